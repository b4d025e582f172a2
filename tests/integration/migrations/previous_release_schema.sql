-- Every schema as the release before versioned migrations (main at 0ed8c15) made it at start-up:
-- tests/migrations/build_previous_release.py, then pg_dump --schema-only, and the ledger's rows.
-- psql's \\restrict lines (pg_dump 15.14+) are left out: the test loads it with asyncpg, not psql.
--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: media_relay; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA media_relay;


--
-- Name: moderation; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA moderation;


--
-- Name: presence; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA presence;


--
-- Name: replay; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA replay;


--
-- Name: room; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA room;


--
-- Name: webhooks; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA webhooks;


--
-- Name: notify_outbox(); Type: FUNCTION; Schema: media_relay; Owner: -
--

CREATE FUNCTION media_relay.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('media_relay_outbox', '');
    RETURN NULL;
END $$;


--
-- Name: notify_outbox(); Type: FUNCTION; Schema: moderation; Owner: -
--

CREATE FUNCTION moderation.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('moderation_outbox', '');
    RETURN NULL;
END $$;


--
-- Name: notify_outbox(); Type: FUNCTION; Schema: replay; Owner: -
--

CREATE FUNCTION replay.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('replay_outbox', '');
    RETURN NULL;
END $$;


--
-- Name: notify_outbox(); Type: FUNCTION; Schema: room; Owner: -
--

CREATE FUNCTION room.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('room_outbox', '');
    RETURN NULL;
END $$;


--
-- Name: notify_outbox(); Type: FUNCTION; Schema: webhooks; Owner: -
--

CREATE FUNCTION webhooks.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('webhooks_outbox', '');
    RETURN NULL;
END $$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: events; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.events (
    global_position bigint NOT NULL,
    event_id uuid NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    space_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    topic text NOT NULL,
    record_key text NOT NULL,
    envelope bytea NOT NULL,
    CONSTRAINT events_version_check CHECK ((version > 0))
);


--
-- Name: events_global_position_seq; Type: SEQUENCE; Schema: media_relay; Owner: -
--

CREATE SEQUENCE media_relay.events_global_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_global_position_seq; Type: SEQUENCE OWNED BY; Schema: media_relay; Owner: -
--

ALTER SEQUENCE media_relay.events_global_position_seq OWNED BY media_relay.events.global_position;


--
-- Name: idempotency; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.idempotency (
    key text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires boolean DEFAULT true NOT NULL
);


--
-- Name: outbox; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.outbox (
    "position" bigint NOT NULL,
    global_position bigint NOT NULL,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);


--
-- Name: outbox_position_seq; Type: SEQUENCE; Schema: media_relay; Owner: -
--

CREATE SEQUENCE media_relay.outbox_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: outbox_position_seq; Type: SEQUENCE OWNED BY; Schema: media_relay; Owner: -
--

ALTER SEQUENCE media_relay.outbox_position_seq OWNED BY media_relay.outbox."position";


--
-- Name: schema_migrations; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.schema_migrations (
    component text NOT NULL,
    step integer NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: space_media_members_v1; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.space_media_members_v1 (
    space_id text NOT NULL,
    user_id text NOT NULL,
    role integer NOT NULL,
    joined_at timestamp with time zone,
    muted boolean NOT NULL,
    mute_kind integer NOT NULL,
    hand_raised_at timestamp with time zone,
    removed boolean NOT NULL,
    barred boolean NOT NULL
);


--
-- Name: space_media_v1; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.space_media_v1 (
    space_id text NOT NULL,
    host_user_id text NOT NULL,
    state integer NOT NULL,
    co_hosts text[] NOT NULL,
    speakers text[] NOT NULL,
    present integer NOT NULL,
    listeners integer NOT NULL,
    recording boolean NOT NULL,
    stream_producers text[] NOT NULL,
    stream_ids text[] NOT NULL
);


--
-- Name: view_positions; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.view_positions (
    view text NOT NULL,
    version integer NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_rebuilds; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.view_rebuilds (
    view text NOT NULL,
    version integer NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_registry; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.view_registry (
    view text NOT NULL,
    version integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_streams; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.view_streams (
    view text NOT NULL,
    version integer NOT NULL,
    producer text NOT NULL,
    stream_id text NOT NULL,
    applied_version bigint NOT NULL
);


--
-- Name: view_writers; Type: TABLE; Schema: media_relay; Owner: -
--

CREATE TABLE media_relay.view_writers (
    view text NOT NULL,
    version integer NOT NULL,
    epoch bigint NOT NULL
);


--
-- Name: events; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.events (
    global_position bigint NOT NULL,
    event_id uuid NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    space_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    topic text NOT NULL,
    record_key text NOT NULL,
    envelope bytea NOT NULL,
    CONSTRAINT events_version_check CHECK ((version > 0))
);


--
-- Name: events_global_position_seq; Type: SEQUENCE; Schema: moderation; Owner: -
--

CREATE SEQUENCE moderation.events_global_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_global_position_seq; Type: SEQUENCE OWNED BY; Schema: moderation; Owner: -
--

ALTER SEQUENCE moderation.events_global_position_seq OWNED BY moderation.events.global_position;


--
-- Name: idempotency; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.idempotency (
    key text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires boolean DEFAULT true NOT NULL
);


--
-- Name: outbox; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.outbox (
    "position" bigint NOT NULL,
    global_position bigint NOT NULL,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);


--
-- Name: outbox_position_seq; Type: SEQUENCE; Schema: moderation; Owner: -
--

CREATE SEQUENCE moderation.outbox_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: outbox_position_seq; Type: SEQUENCE OWNED BY; Schema: moderation; Owner: -
--

ALTER SEQUENCE moderation.outbox_position_seq OWNED BY moderation.outbox."position";


--
-- Name: reports_v1; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.reports_v1 (
    report_id text NOT NULL,
    space_id text NOT NULL,
    reporter_user_id text NOT NULL,
    target_user_id text NOT NULL,
    reason integer NOT NULL,
    text text NOT NULL,
    state integer NOT NULL,
    resolution integer DEFAULT 0 NOT NULL,
    resolved_by_user_id text DEFAULT ''::text NOT NULL,
    reported_at timestamp with time zone NOT NULL,
    resolved_at timestamp with time zone
);


--
-- Name: room_members_v1; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.room_members_v1 (
    space_id text NOT NULL,
    user_id text NOT NULL,
    role integer NOT NULL,
    joined_at timestamp with time zone,
    muted boolean NOT NULL,
    mute_kind integer NOT NULL,
    hand_raised_at timestamp with time zone,
    removed boolean NOT NULL,
    barred boolean NOT NULL
);


--
-- Name: room_rosters_v1; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.room_rosters_v1 (
    space_id text NOT NULL,
    version bigint NOT NULL,
    host_user_id text NOT NULL,
    state integer NOT NULL,
    co_hosts text[] NOT NULL,
    speakers text[] NOT NULL,
    present integer NOT NULL,
    listeners integer NOT NULL
);


--
-- Name: schema_migrations; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.schema_migrations (
    component text NOT NULL,
    step integer NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_positions; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.view_positions (
    view text NOT NULL,
    version integer NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_rebuilds; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.view_rebuilds (
    view text NOT NULL,
    version integer NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_registry; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.view_registry (
    view text NOT NULL,
    version integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_streams; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.view_streams (
    view text NOT NULL,
    version integer NOT NULL,
    producer text NOT NULL,
    stream_id text NOT NULL,
    applied_version bigint NOT NULL
);


--
-- Name: view_writers; Type: TABLE; Schema: moderation; Owner: -
--

CREATE TABLE moderation.view_writers (
    view text NOT NULL,
    version integer NOT NULL,
    epoch bigint NOT NULL
);


--
-- Name: schema_migrations; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.schema_migrations (
    component text NOT NULL,
    step integer NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: space_board_flags_v2; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.space_board_flags_v2 (
    space_id text NOT NULL,
    user_id text NOT NULL,
    connected boolean NOT NULL,
    speaking boolean NOT NULL
);


--
-- Name: space_board_members_v2; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.space_board_members_v2 (
    space_id text NOT NULL,
    user_id text NOT NULL,
    role integer NOT NULL,
    joined_at timestamp with time zone,
    muted boolean NOT NULL,
    mute_kind integer NOT NULL,
    hand_raised_at timestamp with time zone,
    removed boolean NOT NULL,
    barred boolean NOT NULL
);


--
-- Name: space_boards_v2; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.space_boards_v2 (
    space_id text NOT NULL,
    host_user_id text NOT NULL,
    state integer NOT NULL,
    co_hosts text[] NOT NULL,
    speakers text[] NOT NULL,
    present integer NOT NULL,
    listeners integer NOT NULL,
    title text NOT NULL,
    description text NOT NULL,
    join_policy integer NOT NULL,
    scheduled_start timestamp with time zone,
    recording_enabled boolean NOT NULL,
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    end_reason integer NOT NULL,
    stream_producers text[] NOT NULL,
    stream_ids text[] NOT NULL
);


--
-- Name: view_positions; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.view_positions (
    view text NOT NULL,
    version integer NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_rebuilds; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.view_rebuilds (
    view text NOT NULL,
    version integer NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_registry; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.view_registry (
    view text NOT NULL,
    version integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_streams; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.view_streams (
    view text NOT NULL,
    version integer NOT NULL,
    producer text NOT NULL,
    stream_id text NOT NULL,
    applied_version bigint NOT NULL
);


--
-- Name: view_writers; Type: TABLE; Schema: presence; Owner: -
--

CREATE TABLE presence.view_writers (
    view text NOT NULL,
    version integer NOT NULL,
    epoch bigint NOT NULL
);


--
-- Name: events; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.events (
    global_position bigint NOT NULL,
    event_id uuid NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    space_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    topic text NOT NULL,
    record_key text NOT NULL,
    envelope bytea NOT NULL,
    CONSTRAINT events_version_check CHECK ((version > 0))
);


--
-- Name: events_global_position_seq; Type: SEQUENCE; Schema: replay; Owner: -
--

CREATE SEQUENCE replay.events_global_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_global_position_seq; Type: SEQUENCE OWNED BY; Schema: replay; Owner: -
--

ALTER SEQUENCE replay.events_global_position_seq OWNED BY replay.events.global_position;


--
-- Name: finalize_jobs; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.finalize_jobs (
    space_id text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    progress double precision DEFAULT 0 NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    error text DEFAULT ''::text NOT NULL,
    ended_at timestamp with time zone NOT NULL,
    ready_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: idempotency; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.idempotency (
    key text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires boolean DEFAULT true NOT NULL
);


--
-- Name: outbox; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.outbox (
    "position" bigint NOT NULL,
    global_position bigint NOT NULL,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);


--
-- Name: outbox_position_seq; Type: SEQUENCE; Schema: replay; Owner: -
--

CREATE SEQUENCE replay.outbox_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: outbox_position_seq; Type: SEQUENCE OWNED BY; Schema: replay; Owner: -
--

ALTER SEQUENCE replay.outbox_position_seq OWNED BY replay.outbox."position";


--
-- Name: recording_chunks; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.recording_chunks (
    space_id text NOT NULL,
    relay_id text NOT NULL,
    speaker_id text NOT NULL,
    chunk_sequence bigint NOT NULL,
    recorded_at timestamp with time zone NOT NULL,
    chunk bytea NOT NULL
);


--
-- Name: recording_positions; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.recording_positions (
    topic_partition integer NOT NULL,
    next_offset bigint NOT NULL
);


--
-- Name: replay_audience_v1; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.replay_audience_v1 (
    space_id text NOT NULL,
    user_id text NOT NULL,
    admitted boolean NOT NULL,
    co_host boolean NOT NULL
);


--
-- Name: replay_catalog_v1; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.replay_catalog_v1 (
    space_id text NOT NULL,
    host_user_id text DEFAULT ''::text NOT NULL,
    title text DEFAULT ''::text NOT NULL,
    recording_enabled boolean DEFAULT false NOT NULL,
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    cancelled boolean DEFAULT false NOT NULL,
    join_policy integer DEFAULT 0 NOT NULL,
    invite_only boolean DEFAULT false NOT NULL,
    finalized_at timestamp with time zone,
    recording_started_at timestamp with time zone,
    duration interval DEFAULT '00:00:00'::interval NOT NULL,
    size_bytes bigint DEFAULT 0 NOT NULL,
    speaker_ids text[] DEFAULT '{}'::text[] NOT NULL,
    deleted integer DEFAULT 0 NOT NULL,
    listens bigint DEFAULT 0 NOT NULL
);


--
-- Name: schema_migrations; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.schema_migrations (
    component text NOT NULL,
    step integer NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: space_history_v1; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.space_history_v1 (
    space_id text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    topic smallint NOT NULL,
    seq bigint NOT NULL,
    event_type text NOT NULL,
    payload bytea NOT NULL
);


--
-- Name: space_history_v1_seq_seq; Type: SEQUENCE; Schema: replay; Owner: -
--

ALTER TABLE replay.space_history_v1 ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME replay.space_history_v1_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: view_positions; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.view_positions (
    view text NOT NULL,
    version integer NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_rebuilds; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.view_rebuilds (
    view text NOT NULL,
    version integer NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_registry; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.view_registry (
    view text NOT NULL,
    version integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_streams; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.view_streams (
    view text NOT NULL,
    version integer NOT NULL,
    producer text NOT NULL,
    stream_id text NOT NULL,
    applied_version bigint NOT NULL
);


--
-- Name: view_writers; Type: TABLE; Schema: replay; Owner: -
--

CREATE TABLE replay.view_writers (
    view text NOT NULL,
    version integer NOT NULL,
    epoch bigint NOT NULL
);


--
-- Name: barred_v1; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.barred_v1 (
    space_id text NOT NULL,
    user_id text NOT NULL
);


--
-- Name: blocks_v1; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.blocks_v1 (
    user_id text NOT NULL,
    host_user_id text NOT NULL
);


--
-- Name: events; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.events (
    global_position bigint NOT NULL,
    event_id uuid NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    space_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    topic text NOT NULL,
    record_key text NOT NULL,
    envelope bytea NOT NULL,
    CONSTRAINT events_version_check CHECK ((version > 0))
);


--
-- Name: events_global_position_seq; Type: SEQUENCE; Schema: room; Owner: -
--

CREATE SEQUENCE room.events_global_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_global_position_seq; Type: SEQUENCE OWNED BY; Schema: room; Owner: -
--

ALTER SEQUENCE room.events_global_position_seq OWNED BY room.events.global_position;


--
-- Name: idempotency; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.idempotency (
    key text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires boolean DEFAULT true NOT NULL
);


--
-- Name: outbox; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.outbox (
    "position" bigint NOT NULL,
    global_position bigint NOT NULL,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);


--
-- Name: outbox_position_seq; Type: SEQUENCE; Schema: room; Owner: -
--

CREATE SEQUENCE room.outbox_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: outbox_position_seq; Type: SEQUENCE OWNED BY; Schema: room; Owner: -
--

ALTER SEQUENCE room.outbox_position_seq OWNED BY room.outbox."position";


--
-- Name: schema_migrations; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.schema_migrations (
    component text NOT NULL,
    step integer NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: space_directory_v2; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.space_directory_v2 (
    space_id text NOT NULL,
    version bigint NOT NULL,
    state integer NOT NULL,
    host_user_id text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    starts_at timestamp with time zone NOT NULL,
    unattended_since timestamp with time zone,
    hosts integer NOT NULL,
    co_hosts integer NOT NULL,
    speakers integer NOT NULL,
    listeners integer NOT NULL,
    title text NOT NULL,
    description text NOT NULL,
    topics text[] NOT NULL,
    language text NOT NULL,
    words tsvector GENERATED ALWAYS AS ((setweight(to_tsvector('simple'::regconfig, title), 'A'::"char") || setweight(to_tsvector('simple'::regconfig, description), 'B'::"char"))) STORED,
    space bytea NOT NULL
);


--
-- Name: view_positions; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.view_positions (
    view text NOT NULL,
    version integer NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_rebuilds; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.view_rebuilds (
    view text NOT NULL,
    version integer NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_registry; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.view_registry (
    view text NOT NULL,
    version integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_streams; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.view_streams (
    view text NOT NULL,
    version integer NOT NULL,
    producer text NOT NULL,
    stream_id text NOT NULL,
    applied_version bigint NOT NULL
);


--
-- Name: view_writers; Type: TABLE; Schema: room; Owner: -
--

CREATE TABLE room.view_writers (
    view text NOT NULL,
    version integer NOT NULL,
    epoch bigint NOT NULL
);


--
-- Name: deliveries; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.deliveries (
    delivery_id bigint NOT NULL,
    webhook_id text NOT NULL,
    event_id text NOT NULL,
    space_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    enqueued_at timestamp with time zone DEFAULT now() NOT NULL,
    body text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    held_until timestamp with time zone,
    last_attempt_at timestamp with time zone,
    last_status integer DEFAULT 0 NOT NULL,
    last_error text DEFAULT ''::text NOT NULL,
    delivered_at timestamp with time zone,
    finished_at timestamp with time zone
);


--
-- Name: deliveries_delivery_id_seq; Type: SEQUENCE; Schema: webhooks; Owner: -
--

ALTER TABLE webhooks.deliveries ALTER COLUMN delivery_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME webhooks.deliveries_delivery_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: events; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.events (
    global_position bigint NOT NULL,
    event_id uuid NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    space_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    topic text NOT NULL,
    record_key text NOT NULL,
    envelope bytea NOT NULL,
    CONSTRAINT events_version_check CHECK ((version > 0))
);


--
-- Name: events_global_position_seq; Type: SEQUENCE; Schema: webhooks; Owner: -
--

CREATE SEQUENCE webhooks.events_global_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_global_position_seq; Type: SEQUENCE OWNED BY; Schema: webhooks; Owner: -
--

ALTER SEQUENCE webhooks.events_global_position_seq OWNED BY webhooks.events.global_position;


--
-- Name: idempotency; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.idempotency (
    key text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires boolean DEFAULT true NOT NULL
);


--
-- Name: outbox; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.outbox (
    "position" bigint NOT NULL,
    global_position bigint NOT NULL,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);


--
-- Name: outbox_position_seq; Type: SEQUENCE; Schema: webhooks; Owner: -
--

CREATE SEQUENCE webhooks.outbox_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: outbox_position_seq; Type: SEQUENCE OWNED BY; Schema: webhooks; Owner: -
--

ALTER SEQUENCE webhooks.outbox_position_seq OWNED BY webhooks.outbox."position";


--
-- Name: schema_migrations; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.schema_migrations (
    component text NOT NULL,
    step integer NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: space_hosts_v1; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.space_hosts_v1 (
    space_id text NOT NULL,
    host_user_id text NOT NULL
);


--
-- Name: view_positions; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.view_positions (
    view text NOT NULL,
    version integer NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_rebuilds; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.view_rebuilds (
    view text NOT NULL,
    version integer NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_registry; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.view_registry (
    view text NOT NULL,
    version integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: view_streams; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.view_streams (
    view text NOT NULL,
    version integer NOT NULL,
    producer text NOT NULL,
    stream_id text NOT NULL,
    applied_version bigint NOT NULL
);


--
-- Name: view_writers; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.view_writers (
    view text NOT NULL,
    version integer NOT NULL,
    epoch bigint NOT NULL
);


--
-- Name: webhooks; Type: TABLE; Schema: webhooks; Owner: -
--

CREATE TABLE webhooks.webhooks (
    webhook_id text NOT NULL,
    owner_id text NOT NULL,
    owner_is_gateway boolean NOT NULL,
    url text NOT NULL,
    event_types text[] NOT NULL,
    space_ids text[] NOT NULL,
    description text NOT NULL,
    secret text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone
);


--
-- Name: events global_position; Type: DEFAULT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.events ALTER COLUMN global_position SET DEFAULT nextval('media_relay.events_global_position_seq'::regclass);


--
-- Name: outbox position; Type: DEFAULT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.outbox ALTER COLUMN "position" SET DEFAULT nextval('media_relay.outbox_position_seq'::regclass);


--
-- Name: events global_position; Type: DEFAULT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.events ALTER COLUMN global_position SET DEFAULT nextval('moderation.events_global_position_seq'::regclass);


--
-- Name: outbox position; Type: DEFAULT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.outbox ALTER COLUMN "position" SET DEFAULT nextval('moderation.outbox_position_seq'::regclass);


--
-- Name: events global_position; Type: DEFAULT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.events ALTER COLUMN global_position SET DEFAULT nextval('replay.events_global_position_seq'::regclass);


--
-- Name: outbox position; Type: DEFAULT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.outbox ALTER COLUMN "position" SET DEFAULT nextval('replay.outbox_position_seq'::regclass);


--
-- Name: events global_position; Type: DEFAULT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.events ALTER COLUMN global_position SET DEFAULT nextval('room.events_global_position_seq'::regclass);


--
-- Name: outbox position; Type: DEFAULT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.outbox ALTER COLUMN "position" SET DEFAULT nextval('room.outbox_position_seq'::regclass);


--
-- Name: events global_position; Type: DEFAULT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.events ALTER COLUMN global_position SET DEFAULT nextval('webhooks.events_global_position_seq'::regclass);


--
-- Name: outbox position; Type: DEFAULT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.outbox ALTER COLUMN "position" SET DEFAULT nextval('webhooks.outbox_position_seq'::regclass);


--
-- Name: events events_event_id_key; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.events
    ADD CONSTRAINT events_event_id_key UNIQUE (event_id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (global_position);


--
-- Name: events events_stream_id_version_key; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.events
    ADD CONSTRAINT events_stream_id_version_key UNIQUE (stream_id, version);


--
-- Name: idempotency idempotency_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.idempotency
    ADD CONSTRAINT idempotency_pkey PRIMARY KEY (key);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY ("position");


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (component, step);


--
-- Name: space_media_members_v1 space_media_members_v1_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.space_media_members_v1
    ADD CONSTRAINT space_media_members_v1_pkey PRIMARY KEY (space_id, user_id);


--
-- Name: space_media_v1 space_media_v1_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.space_media_v1
    ADD CONSTRAINT space_media_v1_pkey PRIMARY KEY (space_id);


--
-- Name: view_positions view_positions_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.view_positions
    ADD CONSTRAINT view_positions_pkey PRIMARY KEY (view, version, topic, partition);


--
-- Name: view_rebuilds view_rebuilds_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.view_rebuilds
    ADD CONSTRAINT view_rebuilds_pkey PRIMARY KEY (view, version);


--
-- Name: view_registry view_registry_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.view_registry
    ADD CONSTRAINT view_registry_pkey PRIMARY KEY (view, version);


--
-- Name: view_streams view_streams_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.view_streams
    ADD CONSTRAINT view_streams_pkey PRIMARY KEY (view, version, producer, stream_id);


--
-- Name: view_writers view_writers_pkey; Type: CONSTRAINT; Schema: media_relay; Owner: -
--

ALTER TABLE ONLY media_relay.view_writers
    ADD CONSTRAINT view_writers_pkey PRIMARY KEY (view, version);


--
-- Name: events events_event_id_key; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.events
    ADD CONSTRAINT events_event_id_key UNIQUE (event_id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (global_position);


--
-- Name: events events_stream_id_version_key; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.events
    ADD CONSTRAINT events_stream_id_version_key UNIQUE (stream_id, version);


--
-- Name: idempotency idempotency_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.idempotency
    ADD CONSTRAINT idempotency_pkey PRIMARY KEY (key);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY ("position");


--
-- Name: reports_v1 reports_v1_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.reports_v1
    ADD CONSTRAINT reports_v1_pkey PRIMARY KEY (report_id);


--
-- Name: room_members_v1 room_members_v1_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.room_members_v1
    ADD CONSTRAINT room_members_v1_pkey PRIMARY KEY (space_id, user_id);


--
-- Name: room_rosters_v1 room_rosters_v1_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.room_rosters_v1
    ADD CONSTRAINT room_rosters_v1_pkey PRIMARY KEY (space_id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (component, step);


--
-- Name: view_positions view_positions_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.view_positions
    ADD CONSTRAINT view_positions_pkey PRIMARY KEY (view, version, topic, partition);


--
-- Name: view_rebuilds view_rebuilds_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.view_rebuilds
    ADD CONSTRAINT view_rebuilds_pkey PRIMARY KEY (view, version);


--
-- Name: view_registry view_registry_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.view_registry
    ADD CONSTRAINT view_registry_pkey PRIMARY KEY (view, version);


--
-- Name: view_streams view_streams_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.view_streams
    ADD CONSTRAINT view_streams_pkey PRIMARY KEY (view, version, producer, stream_id);


--
-- Name: view_writers view_writers_pkey; Type: CONSTRAINT; Schema: moderation; Owner: -
--

ALTER TABLE ONLY moderation.view_writers
    ADD CONSTRAINT view_writers_pkey PRIMARY KEY (view, version);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (component, step);


--
-- Name: space_board_flags_v2 space_board_flags_v2_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.space_board_flags_v2
    ADD CONSTRAINT space_board_flags_v2_pkey PRIMARY KEY (space_id, user_id);


--
-- Name: space_board_members_v2 space_board_members_v2_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.space_board_members_v2
    ADD CONSTRAINT space_board_members_v2_pkey PRIMARY KEY (space_id, user_id);


--
-- Name: space_boards_v2 space_boards_v2_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.space_boards_v2
    ADD CONSTRAINT space_boards_v2_pkey PRIMARY KEY (space_id);


--
-- Name: view_positions view_positions_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.view_positions
    ADD CONSTRAINT view_positions_pkey PRIMARY KEY (view, version, topic, partition);


--
-- Name: view_rebuilds view_rebuilds_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.view_rebuilds
    ADD CONSTRAINT view_rebuilds_pkey PRIMARY KEY (view, version);


--
-- Name: view_registry view_registry_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.view_registry
    ADD CONSTRAINT view_registry_pkey PRIMARY KEY (view, version);


--
-- Name: view_streams view_streams_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.view_streams
    ADD CONSTRAINT view_streams_pkey PRIMARY KEY (view, version, producer, stream_id);


--
-- Name: view_writers view_writers_pkey; Type: CONSTRAINT; Schema: presence; Owner: -
--

ALTER TABLE ONLY presence.view_writers
    ADD CONSTRAINT view_writers_pkey PRIMARY KEY (view, version);


--
-- Name: events events_event_id_key; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.events
    ADD CONSTRAINT events_event_id_key UNIQUE (event_id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (global_position);


--
-- Name: events events_stream_id_version_key; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.events
    ADD CONSTRAINT events_stream_id_version_key UNIQUE (stream_id, version);


--
-- Name: finalize_jobs finalize_jobs_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.finalize_jobs
    ADD CONSTRAINT finalize_jobs_pkey PRIMARY KEY (space_id);


--
-- Name: idempotency idempotency_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.idempotency
    ADD CONSTRAINT idempotency_pkey PRIMARY KEY (key);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY ("position");


--
-- Name: recording_chunks recording_chunks_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.recording_chunks
    ADD CONSTRAINT recording_chunks_pkey PRIMARY KEY (space_id, relay_id, speaker_id, chunk_sequence);


--
-- Name: recording_positions recording_positions_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.recording_positions
    ADD CONSTRAINT recording_positions_pkey PRIMARY KEY (topic_partition);


--
-- Name: replay_audience_v1 replay_audience_v1_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.replay_audience_v1
    ADD CONSTRAINT replay_audience_v1_pkey PRIMARY KEY (space_id, user_id);


--
-- Name: replay_catalog_v1 replay_catalog_v1_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.replay_catalog_v1
    ADD CONSTRAINT replay_catalog_v1_pkey PRIMARY KEY (space_id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (component, step);


--
-- Name: space_history_v1 space_history_v1_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.space_history_v1
    ADD CONSTRAINT space_history_v1_pkey PRIMARY KEY (space_id, occurred_at, topic, seq);


--
-- Name: view_positions view_positions_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.view_positions
    ADD CONSTRAINT view_positions_pkey PRIMARY KEY (view, version, topic, partition);


--
-- Name: view_rebuilds view_rebuilds_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.view_rebuilds
    ADD CONSTRAINT view_rebuilds_pkey PRIMARY KEY (view, version);


--
-- Name: view_registry view_registry_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.view_registry
    ADD CONSTRAINT view_registry_pkey PRIMARY KEY (view, version);


--
-- Name: view_streams view_streams_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.view_streams
    ADD CONSTRAINT view_streams_pkey PRIMARY KEY (view, version, producer, stream_id);


--
-- Name: view_writers view_writers_pkey; Type: CONSTRAINT; Schema: replay; Owner: -
--

ALTER TABLE ONLY replay.view_writers
    ADD CONSTRAINT view_writers_pkey PRIMARY KEY (view, version);


--
-- Name: barred_v1 barred_v1_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.barred_v1
    ADD CONSTRAINT barred_v1_pkey PRIMARY KEY (space_id, user_id);


--
-- Name: blocks_v1 blocks_v1_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.blocks_v1
    ADD CONSTRAINT blocks_v1_pkey PRIMARY KEY (user_id, host_user_id);


--
-- Name: events events_event_id_key; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.events
    ADD CONSTRAINT events_event_id_key UNIQUE (event_id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (global_position);


--
-- Name: events events_stream_id_version_key; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.events
    ADD CONSTRAINT events_stream_id_version_key UNIQUE (stream_id, version);


--
-- Name: idempotency idempotency_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.idempotency
    ADD CONSTRAINT idempotency_pkey PRIMARY KEY (key);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY ("position");


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (component, step);


--
-- Name: space_directory_v2 space_directory_v2_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.space_directory_v2
    ADD CONSTRAINT space_directory_v2_pkey PRIMARY KEY (space_id);


--
-- Name: view_positions view_positions_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.view_positions
    ADD CONSTRAINT view_positions_pkey PRIMARY KEY (view, version, topic, partition);


--
-- Name: view_rebuilds view_rebuilds_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.view_rebuilds
    ADD CONSTRAINT view_rebuilds_pkey PRIMARY KEY (view, version);


--
-- Name: view_registry view_registry_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.view_registry
    ADD CONSTRAINT view_registry_pkey PRIMARY KEY (view, version);


--
-- Name: view_streams view_streams_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.view_streams
    ADD CONSTRAINT view_streams_pkey PRIMARY KEY (view, version, producer, stream_id);


--
-- Name: view_writers view_writers_pkey; Type: CONSTRAINT; Schema: room; Owner: -
--

ALTER TABLE ONLY room.view_writers
    ADD CONSTRAINT view_writers_pkey PRIMARY KEY (view, version);


--
-- Name: deliveries deliveries_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.deliveries
    ADD CONSTRAINT deliveries_pkey PRIMARY KEY (delivery_id);


--
-- Name: deliveries deliveries_webhook_id_event_id_key; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.deliveries
    ADD CONSTRAINT deliveries_webhook_id_event_id_key UNIQUE (webhook_id, event_id);


--
-- Name: events events_event_id_key; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.events
    ADD CONSTRAINT events_event_id_key UNIQUE (event_id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (global_position);


--
-- Name: events events_stream_id_version_key; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.events
    ADD CONSTRAINT events_stream_id_version_key UNIQUE (stream_id, version);


--
-- Name: idempotency idempotency_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.idempotency
    ADD CONSTRAINT idempotency_pkey PRIMARY KEY (key);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY ("position");


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (component, step);


--
-- Name: space_hosts_v1 space_hosts_v1_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.space_hosts_v1
    ADD CONSTRAINT space_hosts_v1_pkey PRIMARY KEY (space_id);


--
-- Name: view_positions view_positions_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.view_positions
    ADD CONSTRAINT view_positions_pkey PRIMARY KEY (view, version, topic, partition);


--
-- Name: view_rebuilds view_rebuilds_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.view_rebuilds
    ADD CONSTRAINT view_rebuilds_pkey PRIMARY KEY (view, version);


--
-- Name: view_registry view_registry_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.view_registry
    ADD CONSTRAINT view_registry_pkey PRIMARY KEY (view, version);


--
-- Name: view_streams view_streams_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.view_streams
    ADD CONSTRAINT view_streams_pkey PRIMARY KEY (view, version, producer, stream_id);


--
-- Name: view_writers view_writers_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.view_writers
    ADD CONSTRAINT view_writers_pkey PRIMARY KEY (view, version);


--
-- Name: webhooks webhooks_pkey; Type: CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.webhooks
    ADD CONSTRAINT webhooks_pkey PRIMARY KEY (webhook_id);


--
-- Name: events_topic_position; Type: INDEX; Schema: media_relay; Owner: -
--

CREATE INDEX events_topic_position ON media_relay.events USING btree (topic, global_position);


--
-- Name: idempotency_expiring; Type: INDEX; Schema: media_relay; Owner: -
--

CREATE INDEX idempotency_expiring ON media_relay.idempotency USING btree (created_at) WHERE expires;


--
-- Name: space_media_v1_open; Type: INDEX; Schema: media_relay; Owner: -
--

CREATE INDEX space_media_v1_open ON media_relay.space_media_v1 USING btree (space_id) WHERE (state <> ALL (ARRAY[4, 5]));


--
-- Name: events_topic_position; Type: INDEX; Schema: moderation; Owner: -
--

CREATE INDEX events_topic_position ON moderation.events USING btree (topic, global_position);


--
-- Name: idempotency_expiring; Type: INDEX; Schema: moderation; Owner: -
--

CREATE INDEX idempotency_expiring ON moderation.idempotency USING btree (created_at) WHERE expires;


--
-- Name: reports_v1_newest; Type: INDEX; Schema: moderation; Owner: -
--

CREATE INDEX reports_v1_newest ON moderation.reports_v1 USING btree (reported_at DESC, report_id DESC);


--
-- Name: reports_v1_space; Type: INDEX; Schema: moderation; Owner: -
--

CREATE INDEX reports_v1_space ON moderation.reports_v1 USING btree (space_id, reported_at DESC, report_id DESC);


--
-- Name: reports_v1_state; Type: INDEX; Schema: moderation; Owner: -
--

CREATE INDEX reports_v1_state ON moderation.reports_v1 USING btree (state, reported_at DESC, report_id DESC);


--
-- Name: space_boards_v2_open; Type: INDEX; Schema: presence; Owner: -
--

CREATE INDEX space_boards_v2_open ON presence.space_boards_v2 USING btree (space_id) WHERE (state <> ALL (ARRAY[4, 5]));


--
-- Name: events_topic_position; Type: INDEX; Schema: replay; Owner: -
--

CREATE INDEX events_topic_position ON replay.events USING btree (topic, global_position);


--
-- Name: idempotency_expiring; Type: INDEX; Schema: replay; Owner: -
--

CREATE INDEX idempotency_expiring ON replay.idempotency USING btree (created_at) WHERE expires;


--
-- Name: replay_catalog_v1_finalized; Type: INDEX; Schema: replay; Owner: -
--

CREATE INDEX replay_catalog_v1_finalized ON replay.replay_catalog_v1 USING btree (finalized_at) WHERE ((finalized_at IS NOT NULL) AND (deleted = 0));


--
-- Name: replay_catalog_v1_host; Type: INDEX; Schema: replay; Owner: -
--

CREATE INDEX replay_catalog_v1_host ON replay.replay_catalog_v1 USING btree (host_user_id, ended_at DESC, space_id DESC) WHERE (recording_enabled AND (ended_at IS NOT NULL) AND (deleted = 0));


--
-- Name: events_topic_position; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX events_topic_position ON room.events USING btree (topic, global_position);


--
-- Name: idempotency_expiring; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX idempotency_expiring ON room.idempotency USING btree (created_at) WHERE expires;


--
-- Name: space_directory_v2_host; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX space_directory_v2_host ON room.space_directory_v2 USING btree (host_user_id, created_at DESC);


--
-- Name: space_directory_v2_listeners; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX space_directory_v2_listeners ON room.space_directory_v2 USING btree (listeners DESC, space_id DESC);


--
-- Name: space_directory_v2_live; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX space_directory_v2_live ON room.space_directory_v2 USING btree (state) WHERE (state = 3);


--
-- Name: space_directory_v2_newest; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX space_directory_v2_newest ON room.space_directory_v2 USING btree (created_at DESC, space_id DESC);


--
-- Name: space_directory_v2_scheduled; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX space_directory_v2_scheduled ON room.space_directory_v2 USING btree (starts_at) WHERE (state = 2);


--
-- Name: space_directory_v2_starts; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX space_directory_v2_starts ON room.space_directory_v2 USING btree (starts_at, space_id);


--
-- Name: space_directory_v2_topics; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX space_directory_v2_topics ON room.space_directory_v2 USING gin (topics);


--
-- Name: space_directory_v2_words; Type: INDEX; Schema: room; Owner: -
--

CREATE INDEX space_directory_v2_words ON room.space_directory_v2 USING gin (words);


--
-- Name: deliveries_finished; Type: INDEX; Schema: webhooks; Owner: -
--

CREATE INDEX deliveries_finished ON webhooks.deliveries USING btree (finished_at) WHERE (state <> 'pending'::text);


--
-- Name: deliveries_queues; Type: INDEX; Schema: webhooks; Owner: -
--

CREATE INDEX deliveries_queues ON webhooks.deliveries USING btree (webhook_id, space_id, delivery_id) WHERE (state = 'pending'::text);


--
-- Name: events_topic_position; Type: INDEX; Schema: webhooks; Owner: -
--

CREATE INDEX events_topic_position ON webhooks.events USING btree (topic, global_position);


--
-- Name: idempotency_expiring; Type: INDEX; Schema: webhooks; Owner: -
--

CREATE INDEX idempotency_expiring ON webhooks.idempotency USING btree (created_at) WHERE expires;


--
-- Name: webhooks_by_owner; Type: INDEX; Schema: webhooks; Owner: -
--

CREATE INDEX webhooks_by_owner ON webhooks.webhooks USING btree (owner_id, owner_is_gateway, webhook_id) WHERE (deleted_at IS NULL);


--
-- Name: outbox outbox_notify; Type: TRIGGER; Schema: media_relay; Owner: -
--

CREATE TRIGGER outbox_notify AFTER INSERT ON media_relay.outbox FOR EACH STATEMENT EXECUTE FUNCTION media_relay.notify_outbox();


--
-- Name: outbox outbox_notify; Type: TRIGGER; Schema: moderation; Owner: -
--

CREATE TRIGGER outbox_notify AFTER INSERT ON moderation.outbox FOR EACH STATEMENT EXECUTE FUNCTION moderation.notify_outbox();


--
-- Name: outbox outbox_notify; Type: TRIGGER; Schema: replay; Owner: -
--

CREATE TRIGGER outbox_notify AFTER INSERT ON replay.outbox FOR EACH STATEMENT EXECUTE FUNCTION replay.notify_outbox();


--
-- Name: outbox outbox_notify; Type: TRIGGER; Schema: room; Owner: -
--

CREATE TRIGGER outbox_notify AFTER INSERT ON room.outbox FOR EACH STATEMENT EXECUTE FUNCTION room.notify_outbox();


--
-- Name: outbox outbox_notify; Type: TRIGGER; Schema: webhooks; Owner: -
--

CREATE TRIGGER outbox_notify AFTER INSERT ON webhooks.outbox FOR EACH STATEMENT EXECUTE FUNCTION webhooks.notify_outbox();


--
-- Name: deliveries deliveries_webhook_id_fkey; Type: FK CONSTRAINT; Schema: webhooks; Owner: -
--

ALTER TABLE ONLY webhooks.deliveries
    ADD CONSTRAINT deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks.webhooks(webhook_id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: media_relay; Owner: -
--

INSERT INTO media_relay.schema_migrations VALUES ('eventstore', 1, '2026-12-03 21:10:37.817642+00');
INSERT INTO media_relay.schema_migrations VALUES ('eventstore', 2, '2026-12-03 21:10:37.817642+00');
INSERT INTO media_relay.schema_migrations VALUES ('tracking', 1, '2026-12-03 21:10:37.923008+00');
INSERT INTO media_relay.schema_migrations VALUES ('tracking', 2, '2026-12-03 21:10:37.923008+00');
INSERT INTO media_relay.schema_migrations VALUES ('tracking', 3, '2026-12-03 21:10:37.923008+00');
INSERT INTO media_relay.schema_migrations VALUES ('tracking', 4, '2026-12-03 21:10:37.923008+00');
INSERT INTO media_relay.schema_migrations VALUES ('view:media-relay-spaces:v1', 1, '2026-12-03 21:10:37.990073+00');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: moderation; Owner: -
--

INSERT INTO moderation.schema_migrations VALUES ('eventstore', 1, '2026-12-03 21:10:37.630723+00');
INSERT INTO moderation.schema_migrations VALUES ('eventstore', 2, '2026-12-03 21:10:37.630723+00');
INSERT INTO moderation.schema_migrations VALUES ('tracking', 1, '2026-12-03 21:10:37.686919+00');
INSERT INTO moderation.schema_migrations VALUES ('tracking', 2, '2026-12-03 21:10:37.686919+00');
INSERT INTO moderation.schema_migrations VALUES ('tracking', 3, '2026-12-03 21:10:37.686919+00');
INSERT INTO moderation.schema_migrations VALUES ('tracking', 4, '2026-12-03 21:10:37.686919+00');
INSERT INTO moderation.schema_migrations VALUES ('view:moderation-room-roles:v1', 1, '2026-12-03 21:10:37.749874+00');
INSERT INTO moderation.schema_migrations VALUES ('view:moderation-report-index:v1', 1, '2026-12-03 21:10:37.78766+00');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: presence; Owner: -
--

INSERT INTO presence.schema_migrations VALUES ('tracking', 1, '2026-12-03 21:10:37.569026+00');
INSERT INTO presence.schema_migrations VALUES ('tracking', 2, '2026-12-03 21:10:37.569026+00');
INSERT INTO presence.schema_migrations VALUES ('tracking', 3, '2026-12-03 21:10:37.569026+00');
INSERT INTO presence.schema_migrations VALUES ('tracking', 4, '2026-12-03 21:10:37.569026+00');
INSERT INTO presence.schema_migrations VALUES ('view:presence-space-board:v2', 1, '2026-12-03 21:10:37.605981+00');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: replay; Owner: -
--

INSERT INTO replay.schema_migrations VALUES ('eventstore', 1, '2026-12-03 21:10:38.032526+00');
INSERT INTO replay.schema_migrations VALUES ('eventstore', 2, '2026-12-03 21:10:38.032526+00');
INSERT INTO replay.schema_migrations VALUES ('tracking', 1, '2026-12-03 21:10:38.177321+00');
INSERT INTO replay.schema_migrations VALUES ('tracking', 2, '2026-12-03 21:10:38.177321+00');
INSERT INTO replay.schema_migrations VALUES ('tracking', 3, '2026-12-03 21:10:38.177321+00');
INSERT INTO replay.schema_migrations VALUES ('tracking', 4, '2026-12-03 21:10:38.177321+00');
INSERT INTO replay.schema_migrations VALUES ('view:replay-catalog:v1', 1, '2026-12-03 21:10:38.224095+00');
INSERT INTO replay.schema_migrations VALUES ('view:replay-space-history:v1', 1, '2026-12-03 21:10:38.253965+00');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: room; Owner: -
--

INSERT INTO room.schema_migrations VALUES ('eventstore', 1, '2026-12-03 21:10:37.372028+00');
INSERT INTO room.schema_migrations VALUES ('eventstore', 2, '2026-12-03 21:10:37.372028+00');
INSERT INTO room.schema_migrations VALUES ('tracking', 1, '2026-12-03 21:10:37.454457+00');
INSERT INTO room.schema_migrations VALUES ('tracking', 2, '2026-12-03 21:10:37.454457+00');
INSERT INTO room.schema_migrations VALUES ('tracking', 3, '2026-12-03 21:10:37.454457+00');
INSERT INTO room.schema_migrations VALUES ('tracking', 4, '2026-12-03 21:10:37.454457+00');
INSERT INTO room.schema_migrations VALUES ('view:room-space-directory:v2', 1, '2026-12-03 21:10:37.505085+00');
INSERT INTO room.schema_migrations VALUES ('view:room-moderation-reactions:v1', 1, '2026-12-03 21:10:37.557455+00');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: webhooks; Owner: -
--

INSERT INTO webhooks.schema_migrations VALUES ('eventstore', 1, '2026-12-03 21:10:38.262546+00');
INSERT INTO webhooks.schema_migrations VALUES ('eventstore', 2, '2026-12-03 21:10:38.262546+00');
INSERT INTO webhooks.schema_migrations VALUES ('webhooks', 1, '2026-12-03 21:10:38.33297+00');
INSERT INTO webhooks.schema_migrations VALUES ('tracking', 1, '2026-12-03 21:10:38.378778+00');
INSERT INTO webhooks.schema_migrations VALUES ('tracking', 2, '2026-12-03 21:10:38.378778+00');
INSERT INTO webhooks.schema_migrations VALUES ('tracking', 3, '2026-12-03 21:10:38.378778+00');
INSERT INTO webhooks.schema_migrations VALUES ('tracking', 4, '2026-12-03 21:10:38.378778+00');
INSERT INTO webhooks.schema_migrations VALUES ('view:webhooks-delivery-queue:v1', 1, '2026-12-03 21:10:38.439822+00');


--
-- PostgreSQL database dump complete
--


