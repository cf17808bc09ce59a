using System.Net;
using System.Net.Sockets;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// Free loopback ports for every server the tests and benchmarks start. A port is handed out once per process,
/// so two servers started one after the other never get the same port before the first has bound it.
/// </summary>
public static class Ports
{
    private static readonly HashSet<int> Handed = [];

    /// <summary>A port free on 127.0.0.1 now and not handed out before in this run.</summary>
    public static int Free()
    {
        lock (Handed)
        {
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
}
