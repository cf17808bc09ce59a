namespace GrainFs.Grains.Namespace;

/// <summary>
/// How directory grains cache and split listings. Bound from configuration section <see cref="SECTION"/> and checked at
/// start-up by <see cref="NamespaceOptionsValidator"/>.
/// </summary>
public sealed class NamespaceOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SECTION = "GrainFs:Namespace";

    /// <summary>Default for <see cref="ShardThreshold"/>.</summary>
    public const int DEFAULT_SHARD_THRESHOLD = 65_536;

    /// <summary>Default for <see cref="TargetShardEntries"/>.</summary>
    public const int DEFAULT_TARGET_SHARD_ENTRIES = 32_768;

    /// <summary>Default for <see cref="MaxPageEntries"/>.</summary>
    public const int DEFAULT_MAX_PAGE_ENTRIES = 5_000;

    /// <summary>Default for <see cref="SyncRetryDelay"/>.</summary>
    public static readonly TimeSpan DEFAULT_SYNC_RETRY_DELAY = TimeSpan.FromSeconds(10);

    /// <summary>Default for <see cref="SyncAnswerWait"/>.</summary>
    public static readonly TimeSpan DEFAULT_SYNC_ANSWER_WAIT = TimeSpan.FromSeconds(5);

    /// <summary>A directory with more entries than this is split into shards by name hash.</summary>
    public int ShardThreshold { get; set; } = DEFAULT_SHARD_THRESHOLD;

    /// <summary>The number of entries a shard aims to hold; the shard count is the next power of two that keeps shards at or below it.</summary>
    public int TargetShardEntries { get; set; } = DEFAULT_TARGET_SHARD_ENTRIES;

    /// <summary>The most entries one list page carries.</summary>
    public int MaxPageEntries { get; set; } = DEFAULT_MAX_PAGE_ENTRIES;

    /// <summary>After a failed re-list with cached entries to fall back on, how long to serve them before trying again.</summary>
    public TimeSpan SyncRetryDelay { get; set; } = DEFAULT_SYNC_RETRY_DELAY;

    /// <summary>
    /// How long a call waits for a directory's listing from under-storage before it is answered EBUSY ("still listing,
    /// ask again": the SDK asks again until the listing is done) while the listing goes on. A directory of millions of
    /// objects takes longer to list than a grain call may take.
    /// </summary>
    public TimeSpan SyncAnswerWait { get; set; } = DEFAULT_SYNC_ANSWER_WAIT;
}
