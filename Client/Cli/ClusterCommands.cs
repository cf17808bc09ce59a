using System.CommandLine;
using System.Globalization;
using GrainFs.Client;
using GrainFs.DataPlane;

namespace GrainFs.Cli;

/// <summary>The cluster's state: `status` (every member, whatever its state) and `worker list` (the active workers and their tiers).</summary>
internal sealed class ClusterCommands(GrainFsClient client, Terminal terminal)
{
    private readonly TextWriter stdout = terminal.Out;
    private readonly Stream stdoutStream = terminal.Stream;

    /// <summary>`status [--json]`.</summary>
    public static Command BuildStatus()
    {
        var json = Commands.Switch("--json", "one JSON object: silos[] with name, state, host, roles, address, dataEndpoint and, for active silos, tiers[]");
        var status = new Command("status", "every silo of the cluster: its state (joining, active, draining, shutting down, dead), host, roles, version and tiers (in service or not)") { json };
        status.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new ClusterCommands(c, t).StatusAsync(parse.GetValue(json), onlyActive: false)));
        return status;
    }

    /// <summary>`worker list [--json]`.</summary>
    public static Command BuildWorker()
    {
        var json = Commands.Switch("--json", "one JSON object: workers[] with name, host, roles, dataEndpoint, writeTier and tiers[]");
        var list = new Command("list", "the active workers: host, roles, data port, tiers with their use and whether they are in service") { json };
        list.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new ClusterCommands(c, t).StatusAsync(parse.GetValue(json), onlyActive: true)));
        var drainSilo = Commands.Positional("silo", "the silo's name (grainfs worker list)");
        var noStop = Commands.Switch("--no-stop", "leave the silo running once drained (it stays marked draining: stop it yourself, or 'worker undrain' it)");
        var drainJson = Commands.Switch("--json", "one JSON object: silo, blocks, bytes, pinned, failures, persistedFiles, stopped, seconds");
        var drain = new Command("drain", "move a silo's blocks to the homes they will have without it (its written files uploaded first, pinned blocks next), then stop it; readers keep reading meanwhile") { drainSilo, noStop, drainJson };
        drain.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new ClusterCommands(c, t).DrainAsync(parse.GetValue(drainSilo)!, !parse.GetValue(noStop), parse.GetValue(drainJson))));
        var undrainSilo = Commands.Positional("silo", "the silo's name");
        var undrain = new Command("undrain", "end a drain made with --no-stop: the silo takes new files again") { undrainSilo };
        undrain.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new ClusterCommands(c, t).UndrainAsync(parse.GetValue(undrainSilo)!)));
        return new Command("worker", "the cache workers (one per silo)") { list, drain, undrain };
    }

    /// <summary>A member that serves: active, or active and being drained.</summary>
    private static bool Live(SiloMember member) => member.State is "active" or "draining";

    private async Task<int> DrainAsync(string silo, bool stop, bool asJson)
    {
        var bar = new ProgressBar(Console.Error, Console.IsErrorRedirected);
        await Console.Error.WriteLineAsync($"Draining {silo}: uploading its written files, then moving its blocks (pinned first){(stop ? ", then stopping it" : string.Empty)}");
        var result = await client.DrainAsync(silo, stop, bar);
        bar.Finish();
        if (result.Value is { } drained)
        {
            if (asJson)
            {
                await using var json = Output.JsonWriter(stdoutStream);
                json.WriteStartObject();
                json.WriteString("silo", drained.Silo);
                json.WriteNumber("blocks", drained.Blocks);
                json.WriteNumber("bytes", drained.Bytes);
                json.WriteNumber("pinned", drained.Pinned);
                json.WriteNumber("failures", drained.Failures);
                json.WriteNumber("persistedFiles", drained.PersistedFiles);
                json.WriteBoolean("stopped", drained.Stopped);
                json.WriteNumber("seconds", Math.Round(drained.Elapsed.TotalSeconds, 2));
                json.WriteEndObject();
                await json.FlushAsync();
                await stdoutStream.WriteAsync("\n"u8.ToArray());
            }
            else
            {
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"Drained {drained.Silo}: {drained.Blocks} blocks ({ByteSize.Format(drained.Bytes)}, {drained.Pinned} pinned) moved to their new homes, {drained.PersistedFiles} written file(s) uploaded first{(drained.Failures > 0 ? $", {drained.Failures} failed" : string.Empty)}, in {drained.Elapsed.TotalSeconds:F1} s; {(drained.Stopped ? "the silo has stopped and left the cluster" : "the silo still runs, marked draining")}"));
            }
        }

        return result.IsOk ? 0 : Program.Fail(result.Status, result.Describe());
    }

    private async Task<int> UndrainAsync(string silo)
    {
        var result = await client.UndrainAsync(silo);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"{silo} takes new files again");
        return 0;
    }

    private async Task<int> StatusAsync(bool asJson, bool onlyActive)
    {
        var members = await client.GetMembersAsync();
        if (!members.IsOk)
        {
            return Program.Fail(members.Status, members.Describe());
        }

        var rows = new List<(SiloMember Member, WorkerReport? Report, string? Error)>();
        foreach (var member in members.Value!.Where(m => !onlyActive || Live(m)))
        {
            if (!Live(member))
            {
                rows.Add((member, null, null));
                continue;
            }

            var report = await client.GetWorkerReportAsync(member.Name);
            rows.Add((member, report.IsOk ? report.Value : null, report.IsOk ? null : report.Message));
        }

        if (asJson)
        {
            await WriteJsonAsync(rows, onlyActive ? "workers" : "silos");
            return 0;
        }

        if (rows.Count == 0)
        {
            stdout.WriteLine(onlyActive ? "no active worker" : "no member");
            return 0;
        }

        foreach (var (member, report, error) in rows)
        {
            stdout.WriteLine($"{member.Name,-20} {member.State,-13} host {(member.Host.Length == 0 ? "?" : member.Host)}  roles {(member.Roles.Length == 0 ? "?" : string.Join(',', member.Roles))}  {member.Address}{(member.DataEndpoint.Length == 0 ? string.Empty : "  data " + member.DataEndpoint)}{(member.Version.Length == 0 ? string.Empty : "  version " + member.Version)}");
            if (error is not null)
            {
                stdout.WriteLine($"    report: {error}");
            }

            foreach (var t in report?.Tiers ?? [])
            {
                var share = t.Capacity == 0 ? 0 : (double)t.Used / t.Capacity;
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    {t.Tier,-4} {ByteSize.Format(t.Used),12} / {ByteSize.Format(t.Capacity),-12} {share,6:P1}  {t.Blocks,8} blocks  {(t.OutOfService is { } why ? "OUT OF SERVICE: " + why : "in service")}{(report!.WriteTier == t.Tier ? "  (write tier)" : string.Empty)}"));
            }
        }

        return 0;
    }

    private async Task WriteJsonAsync(List<(SiloMember Member, WorkerReport? Report, string? Error)> rows, string name)
    {
        await using var json = Output.JsonWriter(stdoutStream);
        json.WriteStartObject();
        json.WriteStartArray(name);
        foreach (var (member, report, error) in rows)
        {
            json.WriteStartObject();
            json.WriteString("name", member.Name);
            json.WriteString("state", member.State);
            json.WriteString("host", member.Host);
            Output.WriteStrings(json, "roles", member.Roles);
            json.WriteString("address", member.Address);
            json.WriteString("dataEndpoint", member.DataEndpoint);
            json.WriteString("version", member.Version);
            if (error is not null)
            {
                json.WriteString("reportError", error);
            }

            if (report is not null)
            {
                if (report.WriteTier is { } writeTier)
                {
                    json.WriteString("writeTier", writeTier);
                }

                json.WriteStartArray("tiers");
                foreach (var t in report.Tiers)
                {
                    Output.WriteTier(json, t);
                }

                json.WriteEndArray();
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
        await json.FlushAsync();
        stdoutStream.WriteByte((byte)'\n');
    }
}
