using System.ComponentModel;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GrainFs.DataPlane;

/// <summary>
/// Binds options classes from configuration with <see cref="ConfigurationBinder"/>, having first checked that every
/// value converts to its property's type with the same <see cref="TypeConverter"/> the binder uses. A value that does
/// not convert becomes a validation failure naming its key (<c>GrainFs:SiloPort = 'abc': not a whole number</c>),
/// every such value at once, where the binder alone throws for the first one only and silently drops bad list items.
/// Values are trimmed, and a blank value counts as absent, so the property keeps its default.
/// </summary>
public static class OptionsBinding
{
    private const int MAX_DEPTH = 8;

    /// <summary>
    /// Binds the options from the configuration section <paramref name="section"/>. The values that convert are bound;
    /// each one that does not is reported, naming its key, by a validator registered here, so it comes out with the
    /// failures of the options' own validators (the property keeps its default meanwhile).
    /// </summary>
    public static OptionsBuilder<TOptions> BindChecked<TOptions>(this OptionsBuilder<TOptions> builder, IConfiguration configuration, string section)
        where TOptions : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        var failures = new ConversionFailureValidator<TOptions>(builder.Name);
        builder.Services.AddSingleton<IValidateOptions<TOptions>>(failures);
        return builder.Configure(options => failures.Record(BindConvertible(configuration.GetSection(section), options)));
    }

    /// <summary>
    /// Binds <paramref name="options"/> from <paramref name="section"/>; throws <see cref="OptionsValidationException"/>
    /// with one failure per value that does not convert, each naming its full key.
    /// </summary>
    public static void Bind<TOptions>(IConfigurationSection section, TOptions options, string? name = null)
        where TOptions : class
    {
        var failures = BindConvertible(section, options);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(name ?? Options.DefaultName, typeof(TOptions), failures);
        }
    }

    /// <summary>Binds the values of <paramref name="section"/> that convert onto <paramref name="options"/>; returns a message for each that does not, naming its key.</summary>
    public static IReadOnlyList<string> BindConvertible(IConfigurationSection section, object options)
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(options);
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in section.AsEnumerable(makePathsRelative: true))
        {
            if (value?.Trim() is { Length: > 0 } text)
            {
                values[key] = text;
            }
        }

        var failures = new List<(string Path, string Message)>();
        Check(options.GetType(), new ConfigurationBuilder().AddInMemoryCollection(values).Build(), section.Path, failures, 0);
        foreach (var (path, _) in failures)
        {
            values.Remove(section.Path.Length == 0 ? path : path[(section.Path.Length + 1)..]);
        }

        var messages = failures.ConvertAll(f => f.Message);
        try
        {
            new ConfigurationBuilder().AddInMemoryCollection(values).Build().Bind(options);
        }
        catch (InvalidOperationException e)
        {
            // A conversion the check did not foresee: the binder's message names the key, relative to the section.
            messages.Add($"{section.Path}: {e.Message}");
        }

        return messages;
    }

    private static void Check(Type type, IConfiguration configuration, string path, List<(string Path, string Message)> failures, int depth)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetMethod is not { IsPublic: true } || property.GetIndexParameters().Length > 0)
            {
                continue;
            }

            var key = property.GetCustomAttribute<ConfigurationKeyNameAttribute>()?.Name ?? property.Name;
            var child = configuration.GetSection(key);
            var childPath = Join(path, key);
            var propertyType = property.PropertyType;
            if (ElementType(propertyType) is { } element)
            {
                foreach (var item in child.GetChildren())
                {
                    if (item.Value is { } itemValue)
                    {
                        CheckValue(element, itemValue, Join(childPath, item.Key), failures);
                    }
                }
            }
            else if (child.Value is { } value)
            {
                CheckValue(propertyType, value, childPath, failures);
            }
            else if (depth < MAX_DEPTH && !ConvertsFromText(propertyType) && propertyType != typeof(string) && child.GetChildren().Any())
            {
                Check(propertyType, child, childPath, failures, depth + 1);
            }
        }
    }

    private static void CheckValue(Type type, string value, string path, List<(string Path, string Message)> failures)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(string) || type == typeof(object) || !ConvertsFromText(type))
        {
            // Strings need no conversion; the binder leaves a value meant for an object without a converter unbound.
            return;
        }

        try
        {
            _ = TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException or NotSupportedException)
        {
            failures.Add((path, Describe(type, value, path, e)));
        }
    }

    private static string Describe(Type type, string value, string path, Exception e)
    {
        var outOfRange = e is OverflowException || e.InnerException is OverflowException;
        var reason = type.IsEnum
            ? $"not one of {string.Join(", ", Enum.GetNames(type))}"
            : Type.GetTypeCode(type) switch
            {
                TypeCode.Byte or TypeCode.SByte or TypeCode.Int16 or TypeCode.UInt16 or TypeCode.Int32 or TypeCode.UInt32 or TypeCode.Int64 or TypeCode.UInt64 =>
                    outOfRange ? $"a whole number out of range for {type.Name}" : "not a whole number",
                TypeCode.Single or TypeCode.Double or TypeCode.Decimal => outOfRange ? $"a number out of range for {type.Name}" : "not a number",
                TypeCode.Boolean => "not true or false",
                _ when type == typeof(TimeSpan) => outOfRange ? "a duration out of range" : "not a duration (hh:mm:ss)",
                _ => null,
            };

        if (reason is not null)
        {
            return $"{path} = '{value}': {reason}";
        }

        // A converter of our own explains itself, often quoting the value already.
        return e.Message.Contains($"'{value}'", StringComparison.Ordinal) ? $"{path}: {e.Message}" : $"{path} = '{value}': {e.Message}";
    }

    private static bool ConvertsFromText(Type type) =>
        TypeDescriptor.GetConverter(Nullable.GetUnderlyingType(type) ?? type).CanConvertFrom(typeof(string));

    private static Type? ElementType(Type type)
    {
        if (type == typeof(string))
        {
            return null;
        }

        if (type.IsArray)
        {
            return type.GetElementType();
        }

        if (!type.IsGenericType || type.GetGenericArguments().Length != 1)
        {
            return null;
        }

        var element = type.GetGenericArguments()[0];
        return typeof(IEnumerable<>).MakeGenericType(element).IsAssignableFrom(type) ? element : null;
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}:{key}";

    /// <summary>Reports, as validation failures, the values the binding just done for one named options instance could not convert.</summary>
    private sealed class ConversionFailureValidator<TOptions>(string name) : IValidateOptions<TOptions>
        where TOptions : class
    {
        // Options are configured and then validated in one synchronous call (OptionsFactory.Create), so the failures
        // travel from the binding to this validator on the same thread, whoever else creates options meanwhile.
        [ThreadStatic]
        private static Dictionary<string, IReadOnlyList<string>>? _last;

        public void Record(IReadOnlyList<string> failures) => (_last ??= new(StringComparer.Ordinal))[name] = failures;

        public ValidateOptionsResult Validate(string? optionsName, TOptions options)
        {
            if (!string.Equals(optionsName ?? Options.DefaultName, name, StringComparison.Ordinal))
            {
                return ValidateOptionsResult.Skip;
            }

            if (_last is null || !_last.Remove(name, out var failures) || failures.Count == 0)
            {
                return ValidateOptionsResult.Success;
            }

            return ValidateOptionsResult.Fail(failures);
        }
    }
}
