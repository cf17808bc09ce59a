using GrainFs.Storage.UnderStorage;

namespace GrainFs.Probe;

/// <summary>
/// grainfs-probe understorage &lt;uri&gt; &lt;list|stat|read|put|mkdir&gt; [path]: runs one under-storage operation and prints
/// "ok" or "error &lt;kind&gt;: &lt;message&gt;". Exit 0 when it ran (whatever the outcome), 2 on a usage error.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length < 3 || args[0] != "understorage")
        {
            await Console.Error.WriteLineAsync("usage: grainfs-probe understorage <uri> <list|stat|read|put|mkdir> [path]");
            return 2;
        }

        var path = args.Length > 3 ? args[3] : string.Empty;
        await using var storage = new UnderStorageFactory().Create(args[1], new Dictionary<string, string>());
        try
        {
            switch (args[2])
            {
                case "list":
                    await foreach (var page in storage.ListAsync(path))
                    {
                        _ = page.Count;
                    }

                    break;
                case "stat":
                    await storage.StatAsync(path);
                    break;
                case "read":
                    await storage.ReadAsync(path, 0, new byte[16]);
                    break;
                case "put":
                    await storage.PutAsync(path, new MemoryStream([1, 2, 3]), 3);
                    break;
                case "mkdir":
                    await storage.MakeDirectoryAsync(path);
                    break;
                default:
                    await Console.Error.WriteLineAsync($"unknown operation '{args[2]}'");
                    return 2;
            }

            Console.WriteLine("ok");
        }
        catch (UnderStorageException e)
        {
            Console.WriteLine($"error {e.Error}: {e.Message}");
        }

        return 0;
    }
}
