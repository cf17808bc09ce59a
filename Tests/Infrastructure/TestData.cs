namespace GrainFs.Tests.Infrastructure;

/// <summary>Datasets on local disk, shaped like training data: class folders of small files.</summary>
public static class TestData
{
    /// <summary>Creates <paramref name="classes"/> folders of <paramref name="perClass"/> files of random size (1 byte–<paramref name="maxSize"/>). Returns relative path → size.</summary>
    public static Dictionary<string, long> ImageFolder(string root, int classes, int perClass, int maxSize = 20_000, int seed = 7)
    {
        var random = new Random(seed);
        var files = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var c = 0; c < classes; c++)
        {
            var dir = Path.Combine(root, $"class{c:D2}");
            Directory.CreateDirectory(dir);
            for (var f = 0; f < perClass; f++)
            {
                var size = random.Next(1, maxSize);
                var bytes = new byte[size];
                random.NextBytes(bytes);
                File.WriteAllBytes(Path.Combine(dir, $"img{f:D4}.jpg"), bytes);
                files[$"class{c:D2}/img{f:D4}.jpg"] = size;
            }
        }

        return files;
    }

    /// <summary>Every file under <paramref name="root"/> as relative path → size (what `find -type f` lists).</summary>
    public static Dictionary<string, long> Find(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/'), f => new FileInfo(f).Length, StringComparer.Ordinal);
}
