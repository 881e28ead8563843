"""Pure pieces of leader election and leases: ballots, the vote rule, the peer check, the lease.

The replica (``replica.py``) holds the state machine; these are the rules it consults, small enough to
test one by one. The theory (why leases never overlap) is at the top of ``replica.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from systems.dynamo.wal import NO_BALLOT, Ballot

__all__ = ["Ballot", "NO_BALLOT", "quorum_of", "log_is_current", "may_vote_in_round",
           "PeerCheck", "Lease"]


def quorum_of(group_size: int) -> int:
    """A majority of the replication group (2 of 3)."""
    return group_size // 2 + 1


def log_is_current(candidate_last: Ballot, candidate_lsn: int, own_last: Ballot, own_lsn: int) -> bool:
    """M3: the candidate's log is at least as up to date as ours (last ballot first, then length)."""
    return (candidate_last, candidate_lsn) >= (own_last, own_lsn)


def may_vote_in_round(requested: Ballot, promised: Ballot) -> bool:
    """At most one vote per round: a request must open a later round, or repeat the one we promised."""
    return requested[0] > promised[0] or requested == promised


@dataclass(slots=True)
class PeerCheck:
    """M10: a would-be candidate's question to its peers, "do you still hear the leader?".

    Rules (the sources leave them open, so both are offered). A peer that does not answer within the
    timeout abstains: it can vouch for nothing. ``any``: one "healthy" answer is enough to stand down,
    and the check ends as soon as it arrives. ``majority``: stand down if more than half of the answers
    that arrived say "healthy" (a tie elects); decided when every peer has answered or at the
    timeout. No answer at all elects: nobody vouches for the leader.
    """

    rule: str  # "any" | "majority"
    peers: int  # how many peers were asked
    answers: dict[str, bool] = field(default_factory=dict)  # responder → healthy

    def record(self, responder: str, healthy: bool) -> None:
        self.answers.setdefault(responder, healthy)

    @property
    def healthy(self) -> int:
        return sum(self.answers.values())

    def verdict(self, timed_out: bool) -> str | None:
        """"suppress", "elect", or None while undecided."""
        if self.rule == "any" and self.healthy > 0:
            return "suppress"
        if not timed_out and len(self.answers) < self.peers:
            return None
        if self.rule == "any":
            return "elect"
        return "suppress" if 2 * self.healthy > len(self.answers) else "elect"


@dataclass(slots=True)
class Lease:
    """M4: the leader's lease, on the leader's local clock.

    Every heartbeat round is stamped with its send time. When a majority of the group (the leader
    included) has acknowledged round ``r``, the lease is valid until ``sent_at[r] + length - margin``:
    each acknowledging follower promised, at a time no earlier than ``sent_at[r]``, not to help elect
    anyone else for ``length`` of its own clock, and the margin absorbs the clocks' drift over that span.
    """

    length_ns: int
    margin_ns: int  # 0 under the planted bug ``lease_ignores_drift``
    quorum: int
    rounds_kept: int = 16  # acknowledgements of older rounds are ignored (bounded memory)
    round: int = 0
    until_ns: int = 0  # local time the lease ends; 0: never held
    released: bool = False  # given up for a handoff (M11): never renewed again
    sent_at: dict[int, int] = field(default_factory=dict)
    acks: dict[int, set[str]] = field(default_factory=dict)

    def start_round(self, now_ns: int) -> int:
        self.round += 1
        self.sent_at[self.round] = now_ns
        self.acks[self.round] = set()
        stale = self.round - self.rounds_kept
        self.sent_at.pop(stale, None)
        self.acks.pop(stale, None)
        if self.quorum <= 1 and not self.released:  # a group of one: the leader alone is a majority
            self.until_ns = now_ns + self.length_ns - self.margin_ns
        return self.round

    def acknowledge(self, round_: int, follower: str) -> bool:
        """Count a follower's acknowledgement of a round; True if it extended the lease."""
        acks = self.acks.get(round_)
        if acks is None or self.released:
            return False
        acks.add(follower)
        if len(acks) + 1 < self.quorum:  # + 1: the leader itself
            return False
        until = self.sent_at[round_] + self.length_ns - self.margin_ns
        if until <= self.until_ns:
            return False
        self.until_ns = until
        return True

    def valid(self, now_ns: int) -> bool:
        return not self.released and now_ns < self.until_ns

    @property
    def ever_held(self) -> bool:
        return self.until_ns > 0

    def release(self) -> None:
        self.released = True
        self.until_ns = 0
