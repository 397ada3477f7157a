"""The training objectives as small pure functions: augmentation of a batch (SpecAugment, time
shift), targets (label smoothing, mixup) and losses (KL divergence to soft targets, the L2
term). Random draws come from the generators passed in, so a resumed run repeats them."""
import torch
import torch.nn.functional as F


def spec_augment(x, time_frames, freq_bands, gen, n_masks=1):
    """Zero `n_masks` random time stretches (each <= time_frames) and `n_masks` random band
    ranges (each <= freq_bands) per patch; masks may overlap.

    x: [B, C, bands, frames]; gen: torch.Generator (CPU) for reproducible masks.
    """
    b, _, n_bands, n_frames = x.shape

    def mask(n, width):
        w = torch.randint(0, width + 1, (b, 1), generator=gen)
        start = (torch.rand((b, 1), generator=gen) * (n - w + 1)).long()
        pos = torch.arange(n)[None]
        return (pos >= start) & (pos < start + w)           # [B, n]

    bands = torch.zeros((b, n_bands), dtype=torch.bool)
    frames = torch.zeros((b, n_frames), dtype=torch.bool)
    for _ in range(n_masks):   # band then time, as with one mask: the same draws for n = 1
        bands |= mask(n_bands, freq_bands)
        frames |= mask(n_frames, time_frames)
    keep = ~(bands[:, :, None] | frames[:, None, :])
    return x * keep[:, None].to(x.device, x.dtype)


def time_shift(x, max_frames, gen):
    """Roll each patch in time by its own random whole number of frames in [-max, max].

    Circular: frames pushed off one end come back at the other. x: [B, C, bands, frames];
    gen: torch.Generator (CPU).
    """
    b, n = x.shape[0], x.shape[-1]
    shift = torch.randint(-max_frames, max_frames + 1, (b, 1), generator=gen)
    source = ((torch.arange(n)[None] - shift) % n).to(x.device)   # [B, frames]
    return torch.gather(x, -1, source[:, None, None, :].expand_as(x))


def soft_targets(labels, n_classes, smoothing):
    """One-hot targets [B, n_classes] with label smoothing (`smoothing` spread evenly)."""
    t = F.one_hot(labels, n_classes).float()
    return t * (1 - smoothing) + smoothing / n_classes


def mixup(x, target, alpha, gen, beta):
    """Mix each example with another of the batch: lam x + (1 - lam) x[perm], same for the
    targets; lam ~ Beta(alpha, alpha) from the numpy generator `beta`, perm from `gen`."""
    lam = float(beta.beta(alpha, alpha))
    perm = torch.randperm(len(x), generator=gen)
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]


def kl_loss(logits, target):
    """KL(target || softmax(logits)), mean over the batch: cross-entropy minus the targets'
    entropy, so the same gradients, and 0 at a perfect fit; the two-phase paper's loss for
    soft (mixup) targets."""
    return F.kl_div(F.log_softmax(logits.float(), dim=1), target, reduction="batchmean")


def l2_penalty(model, l2_lambda):
    """The L2 term of the two-phase paper's loss (eq. 4): l2_lambda / 2 x the sum of the
    squares of the trainable weights, the parameters WEIGHT_DECAY decays (ndim > 1: kernels
    and matrices; biases and norms' scales are left alone, as Keras regularises kernels, and a
    batch norm's scale of 1 would otherwise dominate the term; a frozen body's weights are
    not trained, so not counted). -> a float32 scalar tensor, 0 when l2_lambda is 0."""
    params = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    if not l2_lambda or not params:
        return torch.zeros((), device=params[0].device if params else "cpu")
    return 0.5 * l2_lambda * sum(p.float().pow(2).sum() for p in params)
