"""The fleet database's schema, versioned like the store's: migration N brings a database from N-1 to N.

A database holds any number of fleets (``fleets.name``). Each account's process publishes its own rows; the
fleet's limits and its kill switch are one row per fleet, which every reservation locks (``FOR UPDATE``): two
accounts deciding at the same moment are served one after the other, so neither can take what the other took.
"""

from __future__ import annotations

import psycopg

from tradeguard.errors import TradeguardError

#: NOTIFY channel: the payload is the fleet's name; a listener re-reads that fleet's row
CHANNEL = "tradeguard_fleet"
#: a lock number all migrating processes share (several accounts may start at once)
_MIGRATION_LOCK = 0x7467_666C  # "tgfl"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE fleets (
        name text PRIMARY KEY,
        currency text NOT NULL,
        limits jsonb NOT NULL DEFAULT '{}',
        kill_state text NOT NULL DEFAULT 'ACTIVE' CHECK (kill_state IN ('ACTIVE', 'REDUCE_ONLY', 'HALTED')),
        kill_trigger text NOT NULL DEFAULT '',
        kill_event bigint NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE fleet_accounts (
        fleet text NOT NULL REFERENCES fleets (name),
        account text NOT NULL,
        login bigint NOT NULL DEFAULT 0,
        server text NOT NULL DEFAULT '',
        currency text NOT NULL DEFAULT '',
        to_fleet double precision NOT NULL DEFAULT 1,
        pid integer NOT NULL DEFAULT 0,
        host text NOT NULL DEFAULT '',
        started_at timestamptz,
        heartbeat_at timestamptz,
        published_at timestamptz,
        equity double precision NOT NULL DEFAULT 0,
        balance double precision NOT NULL DEFAULT 0,
        day_start_equity double precision NOT NULL DEFAULT 0,
        day_pnl double precision NOT NULL DEFAULT 0,
        peak_equity double precision NOT NULL DEFAULT 0,
        kill_state text NOT NULL DEFAULT 'ACTIVE',
        kill_trigger text NOT NULL DEFAULT '',
        fleet_kill_seen bigint NOT NULL DEFAULT 0,
        fleet_kill_seen_at timestamptz,
        stopped boolean NOT NULL DEFAULT false,
        PRIMARY KEY (fleet, account)
    );
    CREATE TABLE fleet_book (
        fleet text NOT NULL,
        account text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('position', 'order')),
        ticket bigint NOT NULL,
        symbol text NOT NULL,
        side text NOT NULL,
        lots double precision NOT NULL,
        currency_base text NOT NULL,
        currency_profit text NOT NULL,
        PRIMARY KEY (fleet, account, kind, ticket),
        FOREIGN KEY (fleet, account) REFERENCES fleet_accounts (fleet, account)
    );
    CREATE TABLE fleet_reservations (
        id bigserial PRIMARY KEY,
        fleet text NOT NULL,
        account text NOT NULL,
        signal_id text NOT NULL,
        symbol text NOT NULL,
        lots double precision NOT NULL,
        currency_base text NOT NULL,
        currency_profit text NOT NULL,
        positions integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        expires_at timestamptz NOT NULL
    );
    CREATE INDEX fleet_reservations_live ON fleet_reservations (fleet, expires_at);
    CREATE TABLE fleet_events (
        id bigserial PRIMARY KEY,
        fleet text NOT NULL REFERENCES fleets (name),
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        kind text NOT NULL,
        from_state text NOT NULL DEFAULT '',
        to_state text NOT NULL DEFAULT '',
        trigger text NOT NULL DEFAULT '',
        message text NOT NULL DEFAULT '',
        operator text NOT NULL DEFAULT '',
        via text NOT NULL DEFAULT '',
        auth text NOT NULL DEFAULT '',
        account text NOT NULL DEFAULT '',
        hash text NOT NULL
    );
    CREATE TABLE fleet_warnings (
        fleet text NOT NULL,
        limit_name text NOT NULL,
        day date NOT NULL,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        account text NOT NULL,
        PRIMARY KEY (fleet, limit_name, day)
    );
    """,
    # 2: the reservation as one server-side statement: the fleet's row is locked only while the server works
    """
    CREATE FUNCTION tradeguard_fleet_reserve(
        p_fleet text, p_account text, p_signal text, p_symbol text, p_lots double precision, p_base text,
        p_profit text, p_positions integer, p_lease double precision
    ) RETURNS TABLE (reservation bigint, code text, used double precision, cap double precision, subject text)
    LANGUAGE plpgsql AS $$
    DECLARE
        f fleets%ROWTYPE;
        v_lim double precision;
        v_pnl double precision;
        v_below double precision;
        v_peaks double precision;
        v_symbol double precision;
        v_base double precision;
        v_profit double precision;
        v_opens double precision;
        v_eps constant double precision := 1e-9;
    BEGIN
        SELECT * INTO f FROM fleets WHERE name = p_fleet FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no fleet % in this database', p_fleet;
        END IF;
        IF f.kill_state <> 'ACTIVE' THEN
            RETURN QUERY SELECT NULL::bigint, 'fleet_kill', 0::float8, 0::float8,
                f.kill_state || ' (' || f.kill_trigger || ')';
            RETURN;
        END IF;
        SELECT coalesce(sum(a.day_pnl * a.to_fleet), 0),
               coalesce(sum(greatest(a.peak_equity - a.equity, 0) * a.to_fleet), 0),
               coalesce(sum(a.peak_equity * a.to_fleet), 0)
          INTO v_pnl, v_below, v_peaks
          FROM fleet_accounts a WHERE a.fleet = p_fleet;
        v_lim := coalesce((f.limits ->> 'daily_loss')::float8, 0);
        IF v_lim > 0 AND -v_pnl >= v_lim THEN
            RETURN QUERY SELECT NULL::bigint, 'fleet_daily_loss', -v_pnl, v_lim, f.currency;
            RETURN;
        END IF;
        v_lim := coalesce((f.limits ->> 'max_drawdown_pct')::float8, 0);
        IF v_lim > 0 AND v_peaks > 0 AND v_below / v_peaks * 100 >= v_lim THEN
            RETURN QUERY SELECT NULL::bigint, 'fleet_drawdown', v_below / v_peaks * 100, v_lim, f.currency;
            RETURN;
        END IF;
        SELECT coalesce(sum(l.lots) FILTER (WHERE l.symbol = p_symbol), 0),
               coalesce(sum(l.lots) FILTER (WHERE l.currency_base = p_base OR l.currency_profit = p_base), 0),
               coalesce(sum(l.lots) FILTER (WHERE l.currency_base = p_profit OR l.currency_profit = p_profit), 0),
               coalesce(sum(l.opens), 0)
          INTO v_symbol, v_base, v_profit, v_opens
          FROM (SELECT b.symbol, b.lots, b.currency_base, b.currency_profit, 1 AS opens FROM fleet_book b
                 WHERE b.fleet = p_fleet
                UNION ALL
                SELECT r.symbol, r.lots, r.currency_base, r.currency_profit, r.positions FROM fleet_reservations r
                 WHERE r.fleet = p_fleet AND r.expires_at > clock_timestamp()) l;
        v_lim := coalesce((f.limits ->> 'max_lots_per_symbol')::float8, 0);
        IF v_lim > 0 AND v_symbol + p_lots > v_lim + v_eps THEN
            RETURN QUERY SELECT NULL::bigint, 'fleet_lots_symbol', v_symbol, v_lim, p_symbol;
            RETURN;
        END IF;
        v_lim := coalesce((f.limits ->> 'max_lots_per_currency')::float8, 0);
        IF v_lim > 0 AND v_base + p_lots > v_lim + v_eps THEN
            RETURN QUERY SELECT NULL::bigint, 'fleet_lots_currency', v_base, v_lim, p_base;
            RETURN;
        END IF;
        IF v_lim > 0 AND v_profit + p_lots > v_lim + v_eps THEN
            RETURN QUERY SELECT NULL::bigint, 'fleet_lots_currency', v_profit, v_lim, p_profit;
            RETURN;
        END IF;
        v_lim := coalesce((f.limits ->> 'max_open_positions')::float8, 0);
        IF v_lim > 0 AND p_positions > 0 AND v_opens + p_positions > v_lim THEN
            RETURN QUERY SELECT NULL::bigint, 'fleet_open_positions', v_opens, v_lim, '';
            RETURN;
        END IF;
        RETURN QUERY INSERT INTO fleet_reservations (fleet, account, signal_id, symbol, lots, currency_base,
                currency_profit, positions, expires_at)
            VALUES (p_fleet, p_account, p_signal, p_symbol, p_lots, p_base, p_profit, p_positions,
                clock_timestamp() + make_interval(secs => p_lease))
            RETURNING id, ''::text, 0::float8, 0::float8, ''::text;
    END;
    $$;
    """,
)


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Bring the database to the newest schema; returns its version. Safe when several processes start at once:
    they take turns on an advisory lock. A database newer than this tradeguard is refused."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS tradeguard_fleet_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM tradeguard_fleet_schema").fetchone()
        current = int(row[0]) if row else 0  # type: ignore[call-overload]
        if row is None:
            conn.execute("INSERT INTO tradeguard_fleet_schema VALUES (0)")
        if current > len(MIGRATIONS):
            raise TradeguardError(
                f"the fleet database has schema {current}; this tradeguard knows up to {len(MIGRATIONS)}: upgrade it"
            )
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            conn.execute(script)  # our own constant DDL
            conn.execute("UPDATE tradeguard_fleet_schema SET version = %s", (number,))
    return len(MIGRATIONS)
