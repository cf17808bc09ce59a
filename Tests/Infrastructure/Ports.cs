using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// Free loopback ports for every server the tests and benchmarks start. A port is handed out once per process,
/// so two servers started one after the other never get the same port before the first has bound it. Ports come
/// from below the kernel's ephemeral range: a port the kernel handed out for a listener on port 0 is one it may give
/// the next outgoing connection as its source port before the server that was told to listen there has bound it.
/// </summary>
public static class Ports
{
    // Above the well-known ports and the silo's default silo port (11111); the tests never use the other defaults.
    private const int Lowest = 12000;
    private static readonly HashSet<int> Handed = [];
    private static readonly int EphemeralLow = ReadEphemeralLow();

    /// <summary>A port free on 127.0.0.1 now and not handed out before in this run.</summary>
    public static int Free()
    {
        lock (Handed)
        {
            // Enough attempts to find one of thousands of free ports; a machine with none left falls back to the kernel's choice.
            for (var attempt = 0; attempt < 200 && EphemeralLow - Lowest >= 1000; attempt++)
            {
                var port = Random.Shared.Next(Lowest, EphemeralLow);
                if (!Handed.Contains(port) && CanListen(port))
                {
                    Handed.Add(port);
                    return port;
                }
            }

            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                if (Handed.Add(port))
                {
                    return port;
                }
            }
        }
    }

    private static bool CanListen(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>The first port of the kernel's ephemeral range (Linux's default when it cannot be read).</summary>
    private static int ReadEphemeralLow()
    {
        const int linuxDefault = 32768;
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return range.Length > 0 && int.TryParse(range[0], NumberStyles.None, CultureInfo.InvariantCulture, out var low) ? low : linuxDefault;
        }
        catch (IOException)
        {
            return linuxDefault;
        }
        catch (UnauthorizedAccessException)
        {
            return linuxDefault;
        }
    }
}
