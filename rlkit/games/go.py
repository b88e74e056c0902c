"""Go's rules in arrays, as PettingZoo's go_v5 plays them (MiniGo's rules): stones without a
liberty are captured, a move that leaves its own group without one is illegal (suicide), a
single stone may not be retaken at once (simple ko), two passes in a row end the game, and the
board is scored as it stands (area: stones plus empty regions that touch one colour only, no
dead stones removed), Black winning when its area less White's less `komi` is above 0 (a tie is
White's, as in PettingZoo). Tested move for move against PettingZoo's game in tests/test_go.py.

A position is PettingZoo's observation of the side to move, [N, N, 17]: planes 0 and 1 the
board after the last move as its mover saw it (so plane 1 is the side to move's stones), each
earlier pair the board one move further back from that move's mover's side, and plane 16 all
ones when White is to move. Ko and passes follow from the two newest pairs: a move that placed
no stone was a pass, and a move that took exactly one stone, played on a point all of whose
neighbours were the taken side's stones, forbids retaking that stone at once. Moves are the
points row-major, then the pass (N * N)."""
from __future__ import annotations

import numpy as np

PLANES = 17


class Go:
    """The rules of Go on an N x N board with `komi`, batched over positions [B, N, N, 17] bool."""

    def __init__(self, size: int = 9, komi: float = 7.5):
        self.size, self.komi = int(size), float(komi)
        n = self.points = self.size * self.size
        self.SHAPE, self.NUM_ACTIONS, self.MAX_MOVES = (self.size, self.size, PLANES), n + 1, 2 * n
        # Each point's up to four neighbours; a missing one is the point n, off the board.
        rows, cols = np.divmod(np.arange(n), self.size)
        nb = np.full((n, 4), n)
        for k, (dr, dc) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
            r, c = rows + dr, cols + dc
            inside = (r >= 0) & (r < self.size) & (c >= 0) & (c < self.size)
            nb[inside, k] = (r * self.size + c)[inside]
        self.neighbours = nb

    # -- reading a position ------------------------------------------------------------------

    def _flat(self, pos: np.ndarray, plane: int) -> np.ndarray:
        return pos[..., plane].reshape(len(pos), self.points)

    def _pad(self, x: np.ndarray, off) -> np.ndarray:
        """[B, n] -> [B, n + 1], the point off the board holding `off`."""
        return np.concatenate([x, np.full((len(x), 1), off, x.dtype)], 1)

    def _passed_and_ko(self, pos):
        """Whether the last move was a pass, and the point the side to move may not take back
        (one-hot [B, n], all False when none)."""
        mine, theirs = self._flat(pos, 1), self._flat(pos, 0)
        mine_before, theirs_before = self._flat(pos, 2), self._flat(pos, 3)
        placed = theirs & ~theirs_before  # the last move's stone, if it placed one
        taken = mine_before & ~mine
        started = self._flat(pos, 16).any(1) | (mine | theirs).any(1)  # Black to move on an empty board: no move yet
        passed = ~placed.any(1) & started
        where = placed.argmax(1)
        around = self._pad(mine_before, True)[np.arange(len(pos))[:, None], self.neighbours[where]].all(1)
        ko = taken & ((taken.sum(1) == 1) & placed.any(1) & around)[:, None]
        return passed, ko

    def _groups(self, mine, theirs):
        """Every point's group (a label shared by the connected points of one kind: the mover's
        stones, the other side's, or empty points) and each stone group's liberties, counted per
        point [B, n]."""
        b, n = mine.shape
        kind = self._pad(np.where(mine, 1, np.where(theirs, 2, 0)).astype(np.int8), -1)
        rows = np.arange(b)[:, None]
        same = kind[:, self.neighbours] == kind[:, :n, None]  # [B, n, 4]
        # Each point takes the least label among its kind's neighbours, then its label's label,
        # until nothing changes: every group ends with its least point's index.
        spread = np.where(same, self.neighbours, n).astype(np.int32)  # neighbours of the same kind, else off the board
        base = (rows * (n + 1)).astype(np.int32)  # flat indices into label, [B, n + 1] (one take is the fastest gather)
        spread = np.ascontiguousarray((spread + base[..., None]).transpose(2, 0, 1)).reshape(4, b * n)
        label = np.tile(np.arange(n + 1, dtype=np.int32), (b, 1))
        while True:
            near = label.ravel().take(spread)  # [4, B * n]: the four neighbours' labels
            near = np.minimum(np.minimum(near[0], near[1]), np.minimum(near[2], near[3])).reshape(b, n)
            new = np.minimum(label[:, :n], near)
            new = np.minimum(new, label.ravel().take(new + base))
            if (new == label[:, :n]).all():
                break
            label[:, :n] = new
        label = label[:, :n]
        # Liberties: the distinct empty points next to each stone group.
        stone_label = self._pad(np.where(kind[:, :n] > 0, label, n), n)[:, self.neighbours]  # [B, n, 4]
        firsts = np.ones_like(stone_label, bool)
        for k in range(1, 4):  # a group next to an empty point on two sides counts it once
            firsts[..., k] = (stone_label[..., k:k + 1] != stone_label[..., :k]).all(-1)
        counted = (kind[:, :n] == 0)[..., None] & firsts & (stone_label < n)
        places = (rows[..., None] * (n + 1) + stone_label)[counted]
        libs = np.bincount(places, minlength=b * (n + 1)).reshape(b, n + 1)
        return label, libs[rows, label], kind[:, :n]

    # -- the rules -----------------------------------------------------------------------------

    def legal(self, pos: np.ndarray) -> np.ndarray:
        """[B, N, N, 17] -> [B, n + 1]: empty points that are neither ko nor suicide, and the pass."""
        mine, theirs = self._flat(pos, 1), self._flat(pos, 0)
        _, libs, kind = self._groups(mine, theirs)
        _, ko = self._passed_and_ko(pos)
        nb_kind = self._pad(kind, -1)[:, self.neighbours]
        nb_libs = self._pad(libs, 0)[:, self.neighbours]
        breathes = ((nb_kind == 0) | (nb_kind == 2) & (nb_libs == 1) | (nb_kind == 1) & (nb_libs >= 2)).any(2)
        points = (kind == 0) & breathes & ~ko
        return np.concatenate([points, np.ones((len(pos), 1), bool)], 1)

    def play_on(self, pos: np.ndarray, legal: np.ndarray) -> np.ndarray:
        """The legal moves `legal` of a player that passes only when every legal point is one of
        its own eyes (an empty point all of whose neighbours are its stones), as self-play plays
        them: PettingZoo counts the board as it stands, so a game must go on until the dead
        stones are taken, and a network that learned to pass while the other side still plays
        loses won games."""
        mine, n = self._flat(pos, 1), self.points
        eyes = self._pad(mine, True)[:, self.neighbours].all(2) & ~mine & ~self._flat(pos, 0)
        out = legal.copy()
        out[:, n] &= ~(legal[:, :n] & ~eyes).any(1)
        return out

    def play(self, pos: np.ndarray, moves: np.ndarray):
        """The movers play `moves` (legal ones). Returns the positions as the side to move next
        sees them, and the result for that side: 1.0 won, -1.0 lost after two passes in a row,
        NaN still open."""
        b, n = len(pos), self.points
        mine, theirs = self._flat(pos, 1).copy(), self._flat(pos, 0).copy()
        rows = np.arange(b)
        stone = moves < n
        passed, _ = self._passed_and_ko(pos)
        if stone.any():
            g = rows[stone]
            label, libs, kind = self._groups(mine[g], theirs[g])
            at = self.neighbours[moves[g]]  # [S, 4]
            nb_kind = self._pad(kind, -1)[np.arange(len(g))[:, None], at]
            nb_libs = self._pad(libs, 0)[np.arange(len(g))[:, None], at]
            nb_label = self._pad(label, -1)[np.arange(len(g))[:, None], at]
            dying = np.where((nb_kind == 2) & (nb_libs == 1), nb_label, -2)  # groups whose last liberty is taken
            taken = (label[..., None] == dying[:, None, :]).any(2) & (kind == 2)
            theirs[g] &= ~taken
            mine[g, moves[g]] = True
        after = np.empty_like(pos)
        after[..., 0] = mine.reshape(b, self.size, self.size)
        after[..., 1] = theirs.reshape(b, self.size, self.size)
        after[..., 2:16] = pos[..., 0:14]
        after[..., 16] = ~pos[..., 16]
        end = np.full(b, np.nan)
        over = ~stone & passed
        if over.any():
            end[over] = self.result(after[over])
        return after, end

    def score(self, pos: np.ndarray) -> np.ndarray:
        """Black's area less White's less komi, [B]."""
        mine, theirs = self._flat(pos, 1), self._flat(pos, 0)
        label, _, kind = self._groups(mine, theirs)
        b, n = mine.shape
        rows = np.arange(b)[:, None]
        nb_kind = self._pad(kind, -1)[:, self.neighbours]  # [B, n, 4]
        touches = np.zeros((b, n, 3), bool)  # per empty region's label: next to the mover's, the other side's
        for side in (1, 2):
            near = (kind == 0) & (nb_kind == side).any(2)
            np.logical_or.at(touches[..., side], (np.broadcast_to(rows, near.shape)[near], label[near]), True)
        region = touches[rows, label]  # each point's region's contacts
        own = (kind == 1) | (kind == 0) & region[..., 1] & ~region[..., 2]
        other = (kind == 2) | (kind == 0) & region[..., 2] & ~region[..., 1]
        white = self._flat(pos, 16).any(1)
        area = own.sum(1) - other.sum(1)  # the mover's less the other side's
        return np.where(white, -area, area) - self.komi

    def result(self, pos: np.ndarray) -> np.ndarray:
        """The result for the side to move if the game ended here: 1.0 won, -1.0 lost."""
        black_wins = self.score(pos) > 0
        white = self._flat(pos, 16).any(1)
        return np.where(black_wins != white, 1.0, -1.0)
