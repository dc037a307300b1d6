-- When a runner's claims may be taken over: its last heartbeat plus ITS OWN
-- stale_claim_threshold_seconds, written with every beat. A peer with a shorter threshold
-- (or a longer sweep) no longer declares a runner that beats less often dead. NULL for a
-- row written by an older cloaca: the peer's own threshold applies, as before.
ALTER TABLE cloaca_runners ADD COLUMN stale_at TEXT;
