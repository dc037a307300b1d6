"""What every query group of the :class:`~cloaca.store.core.Store` holds: the database its
named queries run on, and the notices it sends other processes when a commit changes what
they should look at."""

from __future__ import annotations

from cloaca.store.db import Database, Notifications, Tx


class Notices:
    """What a Store tells other processes when a transaction commits (through the driver's
    :class:`~cloaca.store.db.Notifications`; nothing on a database without a channel)."""

    __slots__ = ("_db", "origin")

    def __init__(self, db: Notifications) -> None:
        self._db = db
        #: Who writes through this Store (a runner id): ``ready`` notices carry it, so a
        #: runner's own listener can ignore the work it made Ready itself.
        self.origin = ""

    def ready(self, tx: Tx) -> None:
        """``ready:<origin>``: new claimable work (or a retry's new ``ready_at``)."""
        self._db.notify(tx, f"ready:{self.origin}")

    def finished(self, tx: Tx, execution_id: str) -> None:
        """``finished:<execution id>``: an execution ended."""
        self._db.notify(tx, f"finished:{execution_id}")

    def triggers(self, tx: Tx) -> None:
        """``triggers:<origin>``: a trigger schedule was added, changed, enabled or
        disabled (the origin's own engine was told directly)."""
        self._db.notify(tx, f"triggers:{self.origin}")


class QueryGroup:
    """Base of the Store's query groups (one noun each, verb methods). A method whose first
    parameter is ``tx`` runs inside the caller's transaction; the others open their own."""

    def __init__(self, db: Database, notices: Notices) -> None:
        self.db = db
        self.notices = notices
