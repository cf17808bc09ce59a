-- GrainFS metadata: the mount table and cached directory listings (schema version 1).
-- Entries are rows written in bulk with binary COPY, one directory (or shard) at a time.
-- Idempotent: apply.sh runs every file on every apply; later versions add files that migrate.

create table if not exists grainfs_schema
(
    id         integer     not null primary key default 1 check (id = 1),
    version    integer     not null,
    applied_at timestamptz not null default now()
);

create table if not exists grainfs_mount_table
(
    id      integer not null primary key default 1 check (id = 1),
    version bigint  not null,
    next_id bigint  not null
);

create table if not exists grainfs_mounts
(
    mount_id   bigint      not null primary key,
    path       text        not null unique,
    uri        text        not null,
    options    jsonb       not null,
    created_at timestamptz not null
);

create table if not exists grainfs_directories
(
    dir_id      bigserial   not null unique,
    dir_key     text        not null primary key,
    mount_id    bigint      not null,
    state       smallint    not null,
    synced_at   timestamptz not null,
    generation  bigint      not null,
    shard_count integer     not null,
    entry_count integer     not null
);

create index if not exists grainfs_directories_mount on grainfs_directories (mount_id);

create table if not exists grainfs_entries
(
    dir_id      bigint   not null,
    name        text     not null,
    kind        smallint not null,
    size        bigint   not null,
    mtime_ticks bigint   not null,
    etag        text     not null,
    mode        integer  not null
);

create index if not exists grainfs_entries_dir on grainfs_entries (dir_id);

insert into grainfs_schema (id, version) values (1, 1)
on conflict (id) do update set version = greatest(grainfs_schema.version, excluded.version), applied_at = now();
