"""Joining the rows of several score sources by id: the one implementation (steps 06, 07, 12).

Ids are the only join key between stages; row position never is. The caller names the
policy, because what a missing id means depends on the step:

  "all"     every source holds exactly the first source's ids (step 07: the sources were
            matched by step 06, so any difference is a mistake);
  "subset"  every other source holds at least the first source's ids; rows beyond them are
            dropped and counted (step 06: a video model scores videos without sound too);
  "common"  the ids every source holds, in the first source's order; what each source loses
            is counted (step 06 with --allow-missing, step 12 with TWO_PHASE_ROWS common).

The result's row order is always the first source's.
"""
from dataclasses import dataclass

import numpy as np

POLICIES = ("all", "subset", "common")
SHOW_IDS = 10          # ids quoted in a message or a report per problem (with the full count)


def align_rows(ids, target_ids):
    """Positions ``p`` with ``ids[p[i]] == target_ids[i]``; -1 where a target id is absent.

    Args:
      ids: the unique ids of the rows of some array.
      target_ids: the ids wanted, in the wanted order.
    Returns:
      int64 [len(target_ids)].
    """
    where = {i: row for row, i in enumerate(ids)}
    if len(where) != len(ids):
        raise ValueError("align_rows: ids must be unique")
    return np.asarray([where.get(i, -1) for i in target_ids], dtype=np.int64)


def examples(ids):
    """{"count", "first"}: how a report lists a set of ids."""
    ids = list(ids)
    return {"count": len(ids), "first": ids[:SHOW_IDS]}


@dataclass
class Joined:
    """Sources joined by id.

    ids:     the joined rows' ids, in the first source's order.
    rows:    {name: int64 [len(ids)]}: row of that source for each joined id.
    dropped: {name: [ids]}: ids that source holds and the join left out, in its order.
    absent:  {name: [ids]}: ids of the first source that this source lacks (first's order).
    """
    ids: list
    rows: dict
    dropped: dict
    absent: dict

    def take(self, name, array):
        """That source's `array` (rows in its own id order) in the joined order."""
        return array[self.rows[name]]


def join(sources, policy="all", hint=""):
    """Join the rows of several sources by id.

    Args:
      sources: {name: (ids, where)} in order, ids unique within a source; `where` names the
        source in messages (its file). The first source's order is the result's.
      policy: "all" | "subset" | "common" (see the module docstring).
      hint: appended to an error message: what to do about it.
    Returns:
      Joined.
    Raises:
      ValueError naming both sources, the counts and the first ids, for ids that differ
      under the policy, a source with an id on two rows, or a join with no id left.
    """
    if policy not in POLICIES:
        raise ValueError(f"join policy {policy!r}: choose one of {POLICIES}")
    names = list(sources)
    first = names[0]
    first_ids, first_where = sources[first]
    held = {}
    for name in names:
        ids, where = sources[name]
        held[name] = set(ids)
        if len(held[name]) != len(ids):
            seen, twice = set(), None
            for i in ids:
                if i in seen:
                    twice = i
                    break
                seen.add(i)
            raise ValueError(f"{where} ({name}): id {twice!r} is on more than one row")
    absent = {n: [i for i in first_ids if i not in held[n]] for n in names}
    extra = {n: [i for i in sources[n][0] if i not in held[first]] for n in names}
    for name in names[1:]:
        where = sources[name][1]
        if policy == "all" and (absent[name] or extra[name]):
            raise ValueError(
                f"{where} ({name}) and {first_where} ({first}) hold different ids: "
                f"{len(absent[name])} of {first}'s ids missing from {name} (e.g. "
                f"{absent[name][:SHOW_IDS]}), {len(extra[name])} extra (e.g. "
                f"{extra[name][:SHOW_IDS]}){hint}")
        if policy == "subset" and absent[name]:
            raise ValueError(
                f"{len(absent[name])} of {len(first_ids)} {first} ids in {first_where} have "
                f"no row in {where} ({name}), e.g. {absent[name][:SHOW_IDS]}{hint}")
    keep = set.intersection(*held.values())
    ids = [i for i in first_ids if i in keep]
    if not ids:
        raise ValueError(f"no id is held by every source ({', '.join(names)}): "
                         f"{len(first_ids)} in {first_where} ({first}){hint}")
    rows = {n: align_rows(sources[n][0], ids) for n in names}
    dropped = {n: [i for i in sources[n][0] if i not in keep] for n in names}
    return Joined(ids=ids, rows=rows, dropped=dropped, absent=absent)
