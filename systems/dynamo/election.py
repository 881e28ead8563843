"""Leader election: the pure rules (vote, peer check, lease) and the replica's election handlers.

Rules 3-6 and 10-11 of ``replica.py``, whose module docstring is the protocol's one description (and
the argument why leases never overlap). The pure pieces come first, small enough to test one by one;
``Elections`` groups the replica's election handlers (a mixin: the state lives on the ``Replica``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from systems.dynamo.effects import CancelTimer, SetTimer
from systems.dynamo.messages import (
    LeaderCheck,
    LeaderCheckReply,
    RequestVote,
    TimeoutNow,
    Vote,
)
from systems.dynamo.wal import NO_BALLOT, Ballot

__all__ = [
    "NO_BALLOT",
    "NS_PER_MS",
    "Ballot",
    "Elections",
    "Lease",
    "PeerCheck",
    "log_is_current",
    "may_vote_in_round",
    "ms_to_ns",
    "quorum_of",
]

NS_PER_MS = 1_000_000


def ms_to_ns(ms: float) -> int:
    return int(ms * NS_PER_MS)


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
    timeout. No answer at all stands down, under either rule: a would-be candidate that hears none
    of its peers could not collect their votes either, and standing would only fence a leader the
    others may still hear (S3 fault B: a follower whose inbound traffic is lost would otherwise
    depose a healthy leader again and again).
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
        if not self.answers:
            return "suppress"  # heard by nobody: no votes would arrive either (S3 fault B)
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


class Elections:
    """The replica's election handlers, mixed into ``Replica`` (see its rules 3-6, 10-12)."""

    # Attributes and helpers used here are defined by Replica: partition, name, peers, config, rng,
    # role, promised, durable_round, votes, split_vote, peer_check, vote_request, _send, _emit, _note, ….

    # -- elections (rules 3-6) --------------------------------------------------------------------------
    def _on_suspicion(self, now_ns: int) -> None:
        if self.role == "leader":
            return
        deadline = self.quiet_since_ns + self.suspicion_ns
        if now_ns < deadline:
            self._emit(SetTimer("suspicion", deadline - now_ns))
            return
        self.quiet_since_ns = now_ns
        self.suspicion_ns = self._draw_suspicion()
        self._emit(SetTimer("suspicion", self.suspicion_ns))
        if (self.role == "candidate" or self.peer_check is not None or self.vote_request is not None
                or not self._may_stand()):
            return  # already standing or checking, backing a candidate (deferred vote), or ineligible
            # (M11), or not a storage replica of the group (a log replica, a learner, removed: M9)
        if self.config.mitigations.peer_confirmation and self.peers:
            self._start_peer_check()
        else:
            self._start_election(now_ns, "suspicion")

    def _start_peer_check(self) -> None:
        self.peer_check = PeerCheck(self.config.mitigations.peer_confirmation_rule, len(self.peers))
        for peer in self.peers:
            self._send(peer, LeaderCheck(self.partition, self.name))
        self._emit(SetTimer("peer-check", ms_to_ns(self.config.timing.peer_check_timeout_ms)))

    def _on_leader_check(self, now_ns: int, source: str, check: LeaderCheck) -> None:
        if self.peer_check is not None and source < self.name:
            self._end_peer_check(now_ns, "suppress", "yielded")  # two would-be candidates: one stands
        self._send(source, LeaderCheckReply(self.partition, self.name, self._hears_leader(now_ns),
                                            self.leader, self.promised))

    def _hears_leader(self, now_ns: int) -> bool:
        if self.term is not None:
            return not self.term.released
        heard = self.last_heard_leader_ns
        return (self.following is not None and heard is not None and
                now_ns - heard <= ms_to_ns(self.config.timing.peer_healthy_within_ms))

    def _on_leader_check_reply(self, now_ns: int, source: str, reply: LeaderCheckReply) -> None:
        if self.peer_check is None or source not in self.peers:
            return
        self.peer_check.record(source, reply.healthy)
        verdict = self.peer_check.verdict(timed_out=False)
        if verdict is not None:
            self._end_peer_check(now_ns, verdict, "peers")

    def _on_peer_check_timeout(self, now_ns: int) -> None:
        if self.peer_check is not None:
            self._end_peer_check(now_ns, self.peer_check.verdict(timed_out=True), "peers")

    def _end_peer_check(self, now_ns: int, verdict: str | None, why: str) -> None:
        check, self.peer_check = self.peer_check, None
        assert check is not None
        self._emit(CancelTimer("peer-check"))
        if verdict == "suppress":
            self._note("election-suppressed", why, check.healthy, len(check.answers))
            self.quiet_since_ns = now_ns
            self._emit(SetTimer("suspicion", self.suspicion_ns))
        elif self._may_stand() and self.role == "follower":
            self._start_election(now_ns, "suspicion")

    def _start_election(self, now_ns: int, reason: str, handoff: bool = False) -> None:
        ballot = (self.promised[0] + 1, self.name)
        self._note("election-started", reason, ballot[0])
        self._become_follower(now_ns, None)
        self.role = "candidate"
        self.votes, self.split_vote = set(), False
        self.candidacy_handoff = handoff
        self.vote_request = None
        self.quiet_since_ns = now_ns
        self._promise(ballot)
        for peer in self.peers:
            self._send(peer, RequestVote(self.partition, ballot, self.name, self.log.last_lsn,
                                         self.log.last_ballot, handoff))
        deferral_ns = self._lease_ns if self.config.mitigations.lease_wait and not handoff else 0
        jitter_ns = ms_to_ns(self.rng.uniform(0.0, self.config.timing.suspicion_jitter_ms))
        self._emit(SetTimer("election", self._election_ns + deferral_ns + jitter_ns))
        self._check_won(now_ns)

    def _on_election_timeout(self, now_ns: int) -> None:
        if self.role != "candidate":
            return
        if self._may_stand():
            self._start_election(now_ns, "retry")
        else:
            self._become_follower(now_ns, None)

    def _on_request_vote(self, now_ns: int, source: str, request: RequestVote) -> None:
        if not may_vote_in_round(request.ballot, self.promised):  # refused with what we promised
            self._send(source, Vote(self.partition, self.promised, self.name, False))
            return
        if request.candidate not in self.group.voters and not log_is_current(
                request.last_ballot, request.last_lsn, self.log.last_ballot, self.log.last_lsn):
            # A replica the group has moved on from (removed while it was down: M9) whose log is
            # behind: refused without adopting its round, so it cannot depose a healthy leader.
            self._send(source, Vote(self.partition, self.promised, self.name, False))
            return
        self._adopt(now_ns, request.ballot)
        if not (self.config.bugs.vote_without_log_check or log_is_current(
                request.last_ballot, request.last_lsn, self.log.last_ballot, self.log.last_lsn)):
            self._send(source, Vote(self.partition, request.ballot, self.name, False))
            return
        self.vote_request = request
        self.quiet_since_ns = now_ns  # a live candidate we back: no candidacy of our own meanwhile
        self._try_grant(now_ns)

    def _try_grant(self, now_ns: int) -> None:
        request = self.vote_request
        if request is None or request.ballot != self.promised:
            self.vote_request = None
            return
        if self.durable_round < request.ballot[0]:
            return  # granted once the promise is in the ballot file (on_persisted)
        if self.config.mitigations.lease_wait and not request.handoff and now_ns < self.promise_until_ns:
            self._emit(SetTimer("vote-deferred", self.promise_until_ns - now_ns))
            if self._deferred_ballot != request.ballot:
                self._deferred_ballot = request.ballot
                self._note("vote-deferred", request.candidate, self.promise_until_ns - now_ns)
            return
        self.vote_request = None
        self.quiet_since_ns = now_ns
        self._send(request.candidate, Vote(self.partition, request.ballot, self.name, True))

    def _on_vote(self, now_ns: int, source: str, vote: Vote) -> None:
        if vote.ballot[0] > self.promised[0]:
            self._adopt(now_ns, vote.ballot)
        elif self.role == "candidate" and vote.ballot[0] == self.promised[0] and source in self.peers:
            if vote.granted and vote.ballot == self.promised:
                self.votes.add(source)
                self._check_won(now_ns)
            elif not vote.granted and vote.ballot != self.promised:
                self._on_split_vote()

    def _on_split_vote(self) -> None:
        """Rule 6: the voter promised a rival of this round, so no one may win it: retry after a short
        random backoff rather than the whole election timeout. (A refusal for a stale log waits the
        timeout: retrying fast would only fence the leader again and again.)"""
        if self.split_vote:
            return
        self.split_vote = True
        self._note("election-lost", self.promised[0], "split")
        backoff_ms = self.rng.uniform(0.0, self.config.timing.suspicion_jitter_ms)
        self._emit(SetTimer("election", ms_to_ns(backoff_ms)))

    def _check_won(self, now_ns: int) -> None:
        if self.role != "candidate" or self.durable_round < self.promised[0]:
            return
        if len(self.votes & set(self.peers)) + 1 >= self.quorum:
            self._become_leader(now_ns)

    def _on_timeout_now(self, now_ns: int, source: str, message: TimeoutNow) -> None:
        if self.role != "follower" or self.following != message.ballot or message.ballot != self.promised:
            self._note("handoff-declined", "stale", message.ballot[0])
        elif not self._may_stand():
            self._note("handoff-declined", "ineligible", message.ballot[0])
        else:
            self._start_election(now_ns, "handoff", handoff=True)
