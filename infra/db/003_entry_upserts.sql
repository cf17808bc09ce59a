-- Schema version 2: single entries of a cached listing are added, replaced and removed by name
-- (writes change one entry, not the whole directory). The unique index serves those lookups and
-- replaces the dir_id index (its prefix). Idempotent.

create unique index if not exists grainfs_entries_dir_name on grainfs_entries (dir_id, name);
drop index if exists grainfs_entries_dir;

insert into grainfs_schema (id, version) values (1, 2)
on conflict (id) do update set version = greatest(grainfs_schema.version, excluded.version), applied_at = now();
