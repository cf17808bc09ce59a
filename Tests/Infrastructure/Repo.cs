namespace GrainFs.Tests.Infrastructure;

/// <summary>Paths of the repository and of the programs it builds, found from the running assembly (the tests' or the benchmarks').</summary>
public static class Repo
{
    private static readonly Lazy<string> LazyRoot = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Orleans.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no Orleans.sln above {AppContext.BaseDirectory}");
    });

    /// <summary>The repository root.</summary>
    public static string Root => LazyRoot.Value;

    /// <summary>Debug or Release, as the running assembly was built: the programs it starts are taken from the same configuration.</summary>
    public static string Configuration =>
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";

    /// <summary>The silo program's dll.</summary>
    public static string SiloDll => Program("Silo", "grainfs-silo");

    /// <summary>The probe the tests run as another user.</summary>
    public static string ProbeDll => Program(Path.Combine("Tests", "Probe"), "grainfs-probe");

    /// <summary>The CLI program's dll.</summary>
    public static string CliDll => Program(Path.Combine("Client", "Cli"), "grainfs");

    private static string Program(string project, string assembly)
    {
        var path = Path.Combine(Root, project, "bin", Configuration, "net10.0", assembly + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is not built (dotnet build Orleans.sln -c {Configuration})", path);
    }
}
