-- Schema version 3: what GrainFS itself wrote or changed on top of a cached listing (overlay entries: written
-- files and directories, attributes set, tombstones), kept apart from the listing so a new listing never loses
-- them, and each mount's usage against its quota. Both are forgotten with their mount (by mount_id). Idempotent.

create table if not exists grainfs_overlay
(
    dir_key     text     not null,
    mount_id    bigint   not null,
    name        text     not null,
    kind        smallint not null,
    size        bigint   not null,
    mtime_ticks bigint   not null,
    etag        text     not null,
    mode        integer  not null,
    uid         integer  not null,
    gid         integer  not null,
    holders     text[]   not null,
    persistence smallint not null,
    error       text     null,
    deleted     boolean  not null,
    primary key (dir_key, name)
);

create index if not exists grainfs_overlay_mount on grainfs_overlay (mount_id);

create table if not exists grainfs_mount_usage
(
    mount_id bigint not null primary key,
    bytes    bigint not null check (bytes >= 0),
    files    bigint not null check (files >= 0)
);

insert into grainfs_schema (id, version) values (1, 3)
on conflict (id) do update set version = greatest(grainfs_schema.version, excluded.version), applied_at = now();
