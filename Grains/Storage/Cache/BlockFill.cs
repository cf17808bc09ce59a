using GrainFs.DataPlane.Blocks;

namespace GrainFs.Storage.Cache;

/// <summary>
/// A block being read from under-storage into a tier. Readers wait on its progress, so the first reader of a
/// cold block gets bytes as they stream in, and every concurrent reader shares this one fill.
/// </summary>
public sealed class BlockFill
{
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _written;

    internal BlockFill(BlockKey key, int length)
    {
        Key = key;
        Length = length;
    }

    /// <summary>The block.</summary>
    public BlockKey Key { get; }

    /// <summary>Bytes the block will hold.</summary>
    public int Length { get; }

    /// <summary>Started ahead of a reader by an announced read order (the block is marked prefetched once held).</summary>
    internal bool Prefetch { get; set; }

    /// <summary>The tier it is written to, once space is reserved (before any byte is published).</summary>
    public Tier? Tier { get; private set; }

    /// <summary>The temporary file being written (data at <see cref="BlockFile.HeaderLength"/>), set with <see cref="Tier"/>.</summary>
    public string TempPath { get; private set; } = string.Empty;

    internal void Place(Tier tier)
    {
        TempPath = tier.NewTempPath(Key);
        Tier = tier;
    }

    /// <summary>Data bytes written so far.</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>Completes when the block is in its tier; faults with the under-storage error.</summary>
    public Task Completion => _completion.Task;

    internal void Publish(long written)
    {
        Interlocked.Exchange(ref _written, written);
        Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>
    /// The fill starts again on another tier (its disk failed): nothing counts as written until the new file has it.
    /// Bytes already handed out were right; a reader of the old file that finds the new one shorter answers Miss.
    /// </summary>
    internal void Restart() => Interlocked.Exchange(ref _written, 0);

    internal void Complete()
    {
        _completion.TrySetResult();
        _progress.TrySetResult();
    }

    internal void Fail(Exception error)
    {
        _completion.TrySetException(error);
        _progress.TrySetResult();
    }

    /// <summary>
    /// Waits until the first <paramref name="end"/> data bytes are written or the fill ends. Returns the bytes
    /// available; throws the fill's error if it failed before reaching <paramref name="end"/>.
    /// </summary>
    public async ValueTask<long> WaitForAsync(long end, CancellationToken cancellationToken)
    {
        end = Math.Min(end, Length);
        while (true)
        {
            var progress = Volatile.Read(ref _progress);
            var written = Written;
            if (written >= end)
            {
                return written;
            }

            if (_completion.Task.IsCompleted)
            {
                await _completion.Task.ConfigureAwait(false);
                return Written;
            }

            await progress.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
