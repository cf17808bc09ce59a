-- Orleans ADO.NET clustering on PostgreSQL, written for GrainFS.
-- The provider reads its queries from OrleansQuery, binds parameters by name and reads result columns by
-- name. Membership uses optimistic concurrency through one version row per deployment: inserting or
-- updating a silo row succeeds only when the caller's @Version still matches, and bumps it.
-- Idempotent: apply.sh runs every file on every apply.

create table if not exists OrleansQuery
(
    QueryKey  varchar(64)   not null primary key,
    QueryText varchar(8000) not null
);

create table if not exists OrleansMembershipVersionTable
(
    DeploymentId varchar(150) not null primary key,
    Timestamp    timestamptz  not null default now(),
    Version      integer      not null default 0
);

create table if not exists OrleansMembershipTable
(
    DeploymentId varchar(150) not null references OrleansMembershipVersionTable (DeploymentId),
    Address      varchar(45)  not null,
    Port         integer      not null,
    Generation   integer      not null,
    SiloName     varchar(150) not null,
    HostName     varchar(150) not null,
    Status       integer      not null,
    ProxyPort    integer,
    SuspectTimes varchar(8000),
    StartTime    timestamptz  not null,
    IAmAliveTime timestamptz  not null,
    primary key (DeploymentId, Address, Port, Generation)
);

insert into OrleansQuery (QueryKey, QueryText) values
('InsertMembershipVersionKey', $q$
    with inserted as (
        insert into OrleansMembershipVersionTable (DeploymentId) values (@DeploymentId)
        on conflict (DeploymentId) do nothing
        returning 1)
    select count(*)::int from inserted
$q$),
('InsertMembershipKey', $q$
    with bumped as (
        update OrleansMembershipVersionTable
           set Version = Version + 1, Timestamp = now()
         where DeploymentId = @DeploymentId and Version = @Version
           and not exists (select 1 from OrleansMembershipTable m
                            where m.DeploymentId = @DeploymentId and m.Address = @Address
                              and m.Port = @Port and m.Generation = @Generation)
        returning 1),
    inserted as (
        insert into OrleansMembershipTable
            (DeploymentId, Address, Port, Generation, SiloName, HostName, Status, ProxyPort, StartTime, IAmAliveTime)
        select @DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName, @Status, @ProxyPort, @StartTime, @IAmAliveTime
          from bumped
        returning 1)
    select count(*)::int from inserted
$q$),
('UpdateMembershipKey', $q$
    with bumped as (
        update OrleansMembershipVersionTable
           set Version = Version + 1, Timestamp = now()
         where DeploymentId = @DeploymentId and Version = @Version
           and exists (select 1 from OrleansMembershipTable m
                        where m.DeploymentId = @DeploymentId and m.Address = @Address
                          and m.Port = @Port and m.Generation = @Generation)
        returning 1),
    updated as (
        update OrleansMembershipTable
           set Status = @Status, SuspectTimes = @SuspectTimes, IAmAliveTime = @IAmAliveTime
         where DeploymentId = @DeploymentId and Address = @Address and Port = @Port and Generation = @Generation
           and exists (select 1 from bumped)
        returning 1)
    select count(*)::int from updated
$q$),
('UpdateIAmAlivetimeKey', $q$
    update OrleansMembershipTable
       set IAmAliveTime = @IAmAliveTime
     where DeploymentId = @DeploymentId and Address = @Address and Port = @Port and Generation = @Generation
$q$),
('MembershipReadRowKey', $q$
    select v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort,
           m.SuspectTimes, m.StartTime, m.IAmAliveTime, v.Version
      from OrleansMembershipVersionTable v
      left join OrleansMembershipTable m
        on m.DeploymentId = v.DeploymentId and m.Address = @Address and m.Port = @Port and m.Generation = @Generation
     where v.DeploymentId = @DeploymentId
$q$),
('MembershipReadAllKey', $q$
    select v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort,
           m.SuspectTimes, m.StartTime, m.IAmAliveTime, v.Version
      from OrleansMembershipVersionTable v
      left join OrleansMembershipTable m on m.DeploymentId = v.DeploymentId
     where v.DeploymentId = @DeploymentId
$q$),
('GatewaysQueryKey', $q$
    select Address, ProxyPort, Generation
      from OrleansMembershipTable
     where DeploymentId = @DeploymentId and Status = @Status and ProxyPort > 0
$q$),
('DeleteMembershipTableEntriesKey', $q$
    delete from OrleansMembershipTable where DeploymentId = @DeploymentId;
    delete from OrleansMembershipVersionTable where DeploymentId = @DeploymentId
$q$),
('CleanupDefunctSiloEntriesKey', $q$
    delete from OrleansMembershipTable
     where DeploymentId = @DeploymentId and IAmAliveTime < @IAmAliveTime and Status <> 3
$q$)
on conflict (QueryKey) do update set QueryText = excluded.QueryText;
