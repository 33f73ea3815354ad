"""scikit-learn's random draws of rows, in memory that does not grow with the rows.

``RandomState.choice(n, size, replace=False)`` (what scikit-learn's
'random_from_data' start draws its K rows with) permutes all n indices and
keeps the first ``size``: an (n,) int64 array, 1/D of float64 data of D
features. :func:`choice_without_replacement` gives the same indices and
leaves the ``RandomState`` in the same state, holding one block of draws at a
time.

How. ``permutation(n)`` is a Fisher-Yates shuffle of ``arange(n)``: for i from
n - 1 down to 1 it swaps entries i and j_i, where j_i is uniform on [0, i],
drawn by masked rejection from 32-bit outputs. ``randint(0, highs)`` with an
array of bounds draws each j_i the same way, from the same stream (checked
against ``permutation`` in the tests), so the draws can be made a block at a
time. The entry that ends at position p is found by following p backwards
through the swaps (i ascending: a swap of i and j_i moves p from one to the
other); that needs the draws in the reverse of the order they are made, so a
first pass records the generator's state at the start of each block (2.5 KB
each) and a second pass redraws the blocks last to first. Each position's
path is followed on its own: it meets a swap only where j_i or i is where it
is, which is found with one comparison over the block.
"""

import numpy as np

# Swaps drawn at a time: 0.5 MiB of int64 draws (and as many bounds).
DRAW_BLOCK = 1 << 16


def _swap_blocks(n_items, block):
    """(high, low) of the blocks of swap positions i, in the order they are drawn
    (i from n_items - 1 down to 1): each block draws j_i for i = high, ..., low."""
    high = n_items - 1
    while high >= 1:
        low = max(1, high - block + 1)
        yield high, low
        high = low - 1


def _draw_swaps(random_state, high, low):
    """j_i for i = high, high - 1, ..., low, as the shuffle draws them."""
    bounds = np.arange(high, low - 1, -1, dtype=np.int64)
    bounds += 1
    return random_state.randint(0, bounds)


def _follow(position, low, draws):
    """Where ``position`` came from through the swaps i = low, ..., low + len - 1
    (``draws[m]`` is j_i of i = low + m), applied in that order."""
    n_steps = draws.shape[0]
    step = 0
    while step < n_steps:
        # the next swap that touches position: one whose j_i is it, or its own i
        matches = np.flatnonzero(draws[step:] == position)
        candidates = [step + int(matches[0])] if matches.size else []
        own = position - low
        if step <= own < n_steps:
            candidates.append(own)
        if not candidates:
            break
        step = min(candidates)
        i, j = low + step, int(draws[step])
        position = j if position == i else i
        step += 1
    return position


def choice_without_replacement(random_state, n_items, size, block=DRAW_BLOCK):
    """``random_state.choice(n_items, size, replace=False)``, bit for bit, and the same
    end state of ``random_state``, without an (n_items,) array.

    Parameters
    ----------
    random_state : numpy.random.RandomState
        Drawn from (advanced exactly as ``choice`` advances it).
    n_items : int
        The indices are drawn from ``range(n_items)``; below 2**32.
    size : int
        How many distinct indices, at most ``n_items``.
    block : int, default=DRAW_BLOCK
        Swaps drawn at a time (memory is a few arrays of this length).

    Returns
    -------
    indices : ndarray of shape (size,), int64
    """
    n_items, size = int(n_items), int(size)
    if not 0 <= size <= n_items:
        raise ValueError(
            f"Cannot take a sample of {size} distinct items from {n_items}."
        )
    states = []
    for high, low in _swap_blocks(n_items, block):
        states.append((high, low, random_state.get_state()))
        _draw_swaps(random_state, high, low)
    end = random_state.get_state()
    positions = list(range(size))
    replay = np.random.RandomState()
    for high, low, state in reversed(states):
        replay.set_state(state)
        draws = _draw_swaps(replay, high, low)[::-1]  # i = low, ..., high
        positions = [_follow(position, low, draws) for position in positions]
    random_state.set_state(end)
    return np.array(positions, dtype=np.int64)
