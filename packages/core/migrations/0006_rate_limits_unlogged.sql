-- Rate-limit counters are hit on every sign-in attempt, by every client, and only count requests
-- over a window of seconds or minutes. UNLOGGED: a hit writes no WAL, so its commit waits for no
-- fsync and the counter's row is locked for microseconds, not for a disk flush (ten sign-ins from
-- one address behind one NAT queued through each other's fsync). What it costs: after a crash of
-- the PostgreSQL server, or on a standby promoted by a failover, the counters start again at zero.
ALTER TABLE erebus_rate_limits SET UNLOGGED;
