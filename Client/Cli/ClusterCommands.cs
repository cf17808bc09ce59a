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
        var status = new Command("status", "every silo of the cluster: its state (joining, active, shutting down, dead), host, roles and tiers (in service or not)") { json };
        status.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new ClusterCommands(c, t).StatusAsync(parse.GetValue(json), onlyActive: false)));
        return status;
    }

    /// <summary>`worker list [--json]`.</summary>
    public static Command BuildWorker()
    {
        var json = Commands.Switch("--json", "one JSON object: workers[] with name, host, roles, dataEndpoint, writeTier and tiers[]");
        var list = new Command("list", "the active workers: host, roles, data port, tiers with their use and whether they are in service") { json };
        list.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new ClusterCommands(c, t).StatusAsync(parse.GetValue(json), onlyActive: true)));
        return new Command("worker", "the cache workers (one per silo)") { list };
    }

    private async Task<int> StatusAsync(bool asJson, bool onlyActive)
    {
        var members = await client.GetMembersAsync();
        if (!members.IsOk)
        {
            return Program.Fail(members.Status, members.Describe());
        }

        var rows = new List<(SiloMember Member, WorkerReport? Report, string? Error)>();
        foreach (var member in members.Value!.Where(m => !onlyActive || m.State == "active"))
        {
            if (member.State != "active")
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
            stdout.WriteLine($"{member.Name,-20} {member.State,-13} host {(member.Host.Length == 0 ? "?" : member.Host)}  roles {(member.Roles.Length == 0 ? "?" : string.Join(',', member.Roles))}  {member.Address}{(member.DataEndpoint.Length == 0 ? string.Empty : "  data " + member.DataEndpoint)}");
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
            json.WriteStartArray("roles");
            foreach (var role in member.Roles)
            {
                json.WriteStringValue(role);
            }

            json.WriteEndArray();
            json.WriteString("address", member.Address);
            json.WriteString("dataEndpoint", member.DataEndpoint);
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
