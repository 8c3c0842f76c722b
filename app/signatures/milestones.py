"""Milestones: the organisers hear when a petition reaches 25, 50, 75 and 100 % of its goal.

Checked by the confirmation that brings the count there (app/signatures/service.py); the e-mail
itself is the campaign's (app/campaigns/tasks.py renders it).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.campaigns import service as campaign_service
from app.email import outbox
from app.petitions.models import Petition
from app.signatures import tally

MILESTONE_PERCENTS = (25, 50, 75, 100)
# Confirmations on different tally shards do not wait for each other, so under a surge the
# count one of them sees can lag behind by the confirmations still in flight, and a threshold
# can be passed without any of them seeing it. Confirmations that see a count within this many
# signatures of a threshold therefore recount under a lock on the petition row (the others,
# nearly all of them, do nothing more): the last of them sees every confirmation that counts.
MILESTONE_BAND = 100


def milestone_threshold(goal: int, percent: int) -> int:
    """The confirmed count at which a petition reaches `percent` of its goal (rounded up)."""
    return max(1, -(-goal * percent // 100))


def reached_milestone(goal: int, count: int) -> int | None:
    """The highest milestone (percent) a count has reached."""
    reached = [p for p in MILESTONE_PERCENTS if milestone_threshold(goal, p) <= count]
    return max(reached) if reached else None


def check_milestones(session: Session, *, petition: Petition, count: int) -> int | None:
    """Called after a newly confirmed signature brought the petition's count to `count`.

    When the count has just reached 25, 50, 75 or 100 % of the goal (count_before < threshold
    <= count_after, widened by MILESTONE_BAND for confirmations running at the same time), queue
    one e-mail to each organiser of the campaign. Each (milestone, organiser) e-mail has its
    outbox dedup key, so it is queued once whatever the concurrency. When a confirmation passes
    several thresholds at once (tiny goals), only the highest is announced. Returns the
    milestone queued, if any.
    """
    assert petition.id is not None
    goal = petition.goal
    thresholds = [milestone_threshold(goal, p) for p in MILESTONE_PERCENTS]
    if not any(count - MILESTONE_BAND < t <= count + MILESTONE_BAND for t in thresholds):
        return None  # the usual case: nothing more to read
    # FOR NO KEY UPDATE: serialises these few confirmations without conflicting with the key
    # share locks that signing and counting take on the petition row.
    session.execute(
        select(Petition.id).where(col(Petition.id) == petition.id).with_for_update(key_share=True)
    )
    count = tally.confirmed_count(session, petition_id=petition.id)
    percent = reached_milestone(goal, count)
    if percent is None or milestone_threshold(goal, percent) <= count - MILESTONE_BAND:
        return None
    prefix = f"milestone:{petition.id}:{percent}"
    keys = {
        f"{prefix}:{user.id}": user
        for user in campaign_service.organisers(session, campaign_id=petition.campaign_id)
    }
    if not keys:
        return None
    queued = outbox.queued_keys(session, list(keys))
    for key, user in keys.items():
        if key not in queued:
            outbox.enqueue(
                session,
                kind="petition_milestone",
                payload={
                    "petition_id": petition.id,
                    "user_id": user.id,
                    "percent": percent,
                    "count": count,
                    "goal": goal,
                },
                dedup_key=key,
                recipient=user.email,
            )
    return percent
