"""Pretrained backbones' throughput: CNN14 and VGGish, inference and training, and CNN14's
front end (ours, numpy, step 03) against torchlibrosa's (PANNs' own, in the model).

A "clip" is 10 s of sound: one panns patch [1, 64, 1001] for ``panns_cnn14``, ten vggish
patches [1, 64, 96] for ``vggish``. Random weights and random inputs (throughput does not
depend on them); --clips-per-batch clips per step, one warm-up step, then --repeats timed
steps (median):

  inference  model.eval(), no gradients: clips/s
  training   model.train(), forward + cross-entropy + backward + AdamW step: clips/s
  front end  one 10 s 32 kHz track (noise) to log-mel: audio.log_spectrogram under the panns
             preset vs torchlibrosa's Spectrogram + LogmelFilterBank (float32, CPU, the
             settings CNN14 builds them with), interleaved; the ratio torchlibrosa / ours
             (> 1: ours is faster), over --repeats x 8 tracks

On CUDA (DEVICE auto or cuda) the models run on the GPU with AMP (AMP key); the front ends
stay on the CPU (step 03 runs there). Needs torchlibrosa (a test requirement) for the front-end
comparison. Torch uses TORCH_THREADS threads (0: one per core). Writes nothing.

  python benchmarks/bench_pretrained.py
  python benchmarks/bench_pretrained.py --clips-per-batch 16 --repeats 10 --device cuda
"""
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from soundtrack import audio
from soundtrack import cli
import network

PANNS = audio.front_end("panns")
CLIP_SECONDS = 10
MODELS = {"panns_cnn14": (PANNS.patch_shape, 1),           # patch shape, patches per clip
          "vggish": (audio.VGGISH.patch_shape, 10)}
N_CLASSES = 527


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_model(name, clips, repeats, device, amp):
    """{"inference": clips/s, "training": clips/s} of one model (median of `repeats`)."""
    shape, per_clip = MODELS[name]
    model = network.build_audio(name, N_CLASSES, shape).to(device)
    x = torch.randn(clips * per_clip, 1, *shape, device=device)
    y = torch.randint(N_CLASSES, (len(x),), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and amp)
    cast = torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda" and amp)

    def infer():
        model.eval()
        with torch.no_grad(), cast:
            model(x)

    def step():
        model.train()
        with cast:
            loss = torch.nn.functional.cross_entropy(model(x)["logits"].float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    out = {}
    for what, run in (("inference", infer), ("training", step)):
        run()                                               # warm-up
        times = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            run()
            _sync(device)
            times.append(time.perf_counter() - t0)
        out[what] = clips / statistics.median(times)
    return out


def time_front_ends(repeats):
    """(ours s/track, torchlibrosa s/track), medians over repeats x 8 tracks of 10 s."""
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram
    rate, fe = PANNS.sample_rate_hz, PANNS
    spec = Spectrogram(n_fft=fe.fft_length, hop_length=fe.hop_samples,
                       win_length=fe.window_samples, window="hann", center=True,
                       pad_mode="reflect", freeze_parameters=True)
    mel = LogmelFilterBank(sr=rate, n_fft=fe.fft_length, n_mels=fe.num_bands,
                           fmin=fe.band_min_hz, fmax=fe.band_max_hz, ref=1.0, amin=fe.log_floor,
                           top_db=None, freeze_parameters=True)
    rng = np.random.default_rng(0)
    tracks = [(0.3 * rng.standard_normal(CLIP_SECONDS * rate)).astype(np.float32)
              for _ in range(8)]

    def theirs(x):
        with torch.no_grad():
            return mel(spec(torch.from_numpy(x)[None]))[0, 0].numpy()
    ours_t, theirs_t = [], []
    audio.log_spectrogram(tracks[0], rate, fe), theirs(tracks[0])      # warm-up
    for _ in range(repeats):
        for x in tracks:                   # interleaved: drift hits both alike
            t0 = time.perf_counter()
            audio.log_spectrogram(x, rate, fe)
            t1 = time.perf_counter()
            theirs(x)
            t2 = time.perf_counter()
            ours_t.append(t1 - t0)
            theirs_t.append(t2 - t1)
    return statistics.median(ours_t), statistics.median(theirs_t)


def main(argv=None):
    p = cli.parser(__doc__, ["DEVICE", "AMP", "TORCH_THREADS"])
    p.add_argument("--clips-per-batch", type=int, default=2, help="10 s clips per step")
    p.add_argument("--repeats", type=int, default=3, help="timed steps (median)")
    cfg = cli.parse(p, argv)
    torch.set_num_threads(cfg.torch_threads or os.cpu_count())
    cuda = torch.cuda.is_available() if cfg.device == "auto" else cfg.device == "cuda"
    device = torch.device("cuda" if cuda else "cpu")
    where = (f"{torch.cuda.get_device_name(device)}, AMP {'on' if cfg.amp else 'off'}" if cuda
             else f"CPU, {torch.get_num_threads()} threads of {os.cpu_count()} cores")
    print(f"{where}; {cfg.clips_per_batch} clips of {CLIP_SECONDS} s per step, median of "
          f"{cfg.repeats}")
    for name in MODELS:
        r = time_model(name, cfg.clips_per_batch, cfg.repeats, device, cfg.amp)
        print(f"{name:12s} inference {r['inference']:8.2f} clips/s   training "
              f"{r['training']:8.2f} clips/s")
    ours, theirs = time_front_ends(cfg.repeats)
    print(f"CNN14 front end per 10 s track: ours (soundtrack/audio.py, numpy) {ours * 1000:.1f} ms, "
          f"torchlibrosa {theirs * 1000:.1f} ms; ratio torchlibrosa / ours = "
          f"{theirs / ours:.2f}")


if __name__ == "__main__":
    main()
