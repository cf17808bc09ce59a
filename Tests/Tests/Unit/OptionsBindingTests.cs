using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GrainFs.Tests.Unit;

public class OptionsBindingTests
{
    private static IConfigurationSection Section(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build().GetSection("App");

    [Fact]
    public void Every_value_that_does_not_convert_is_reported_by_its_full_key_and_the_rest_is_bound()
    {
        var options = new Sample();
        var failures = OptionsBinding.BindConvertible(
            Section(new()
            {
                ["App:Count"] = "abc",
                ["App:Ratio"] = "half",
                ["App:Wait"] = "soon",
                ["App:On"] = "maybe",
                ["App:Name"] = "kept",
                ["App:Inner:Level"] = "deep",
                ["App:Numbers:0"] = "1",
                ["App:Numbers:1"] = "two",
                ["App:Tiers:0"] = "SSD=/data/cache:1GiB",
                ["App:Tiers:1"] = "bogus",
            }),
            options);

        Assert.Equal(
            [
                "App:Count = 'abc': not a whole number",
                "App:Ratio = 'half': not a number",
                "App:Wait = 'soon': not a duration (hh:mm:ss)",
                "App:On = 'maybe': not true or false",
                "App:Inner:Level = 'deep': not a whole number",
                "App:Numbers:1 = 'two': not a whole number",
                "App:Tiers:1: 'bogus' is not a tier (write NAME=FOLDER:CAPACITY, e.g. MEM=/dev/shm/grainfs:4GiB)",
            ],
            failures);
        Assert.Equal(Sample.DEFAULT_COUNT, options.Count);
        Assert.Equal("kept", options.Name);
        Assert.Equal([1], options.Numbers);
        Assert.Equal([new TierSpec(TierKind.Ssd, "/data/cache", 1L << 30)], options.Tiers);
    }

    [Fact]
    public void Values_are_trimmed_and_blank_values_keep_the_default()
    {
        var options = new Sample();
        var failures = OptionsBinding.BindConvertible(Section(new() { ["App:Count"] = " 12 ", ["App:Name"] = "   ", ["App:Wait"] = "" }), options);
        Assert.Empty(failures);
        Assert.Equal(12, options.Count);
        Assert.Equal(Sample.DEFAULT_NAME, options.Name);
        Assert.Equal(Sample.DEFAULT_WAIT, options.Wait);
    }

    [Fact]
    public void Bind_throws_the_failures_as_a_validation_exception()
    {
        var e = Assert.Throws<OptionsValidationException>(() => OptionsBinding.Bind(Section(new() { ["App:Count"] = "99999999999" }), new Sample()));
        Assert.Equal(["App:Count = '99999999999': a whole number out of range for Int32"], e.Failures);
    }

    [Fact]
    public void Conversion_failures_come_out_of_start_up_validation_together_with_the_validators_failures()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["App:Count"] = "abc", ["App:Name"] = "bad name" }).Build();
        var services = new ServiceCollection();
        services.AddOptions<Sample>().BindChecked(configuration, "App").Validate(o => !o.Name.Contains(' ', StringComparison.Ordinal), "App:Name: no spaces").ValidateOnStart();
        using var provider = services.BuildServiceProvider();
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Equal(["App:Count = 'abc': not a whole number", "App:Name: no spaces"], e.Failures);
    }

    [Fact]
    public void A_valid_section_binds_with_no_failures()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["App:Count"] = "3", ["App:Wait"] = "00:00:05" }).Build();
        var services = new ServiceCollection();
        services.AddOptions<Sample>().BindChecked(configuration, "App").ValidateOnStart();
        using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<IStartupValidator>().Validate();
        var options = provider.GetRequiredService<IOptions<Sample>>().Value;
        Assert.Equal(3, options.Count);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Wait);
    }

    [Theory]
    [InlineData("MEM=/dev/shm/grainfs:4GiB", TierKind.Mem, "/dev/shm/grainfs", 4L << 30)]
    [InlineData(" ssd=/data/cache:200GiB ", TierKind.Ssd, "/data/cache", 200L << 30)]
    public void Tier_specs_convert_from_their_text(string text, TierKind name, string path, long capacity)
    {
        var converter = System.ComponentModel.TypeDescriptor.GetConverter(typeof(TierSpec));
        Assert.Equal(new TierSpec(name, path, capacity), converter.ConvertFromInvariantString(text));
        Assert.Equal(new TierSpec(name, path, capacity), converter.ConvertFromInvariantString(converter.ConvertToInvariantString(new TierSpec(name, path, capacity))!));
    }

    private sealed class Sample
    {
        public const int DEFAULT_COUNT = 7;

        public const string DEFAULT_NAME = "default";

        public static readonly TimeSpan DEFAULT_WAIT = TimeSpan.FromSeconds(1);

        public int Count { get; set; } = DEFAULT_COUNT;

        public double Ratio { get; set; }

        public TimeSpan Wait { get; set; } = DEFAULT_WAIT;

        public bool On { get; set; }

        public string Name { get; set; } = DEFAULT_NAME;

        public SampleInner Inner { get; set; } = new();

        public List<int> Numbers { get; set; } = [];

        public List<TierSpec> Tiers { get; set; } = [];
    }

    private sealed class SampleInner
    {
        public int Level { get; set; }
    }
}
