using System.ComponentModel;
using System.Globalization;

namespace GrainFs.Storage.Cache;

/// <summary>
/// Converts between <see cref="TierSpec"/> and its text form NAME=FOLDER:CAPACITY, so that configuration binds the items
/// of GrainFs:Cache:Tiers straight into <see cref="CacheOptions.Tiers"/>. Text that is not a tier fails with
/// <see cref="TierSpec.TryParse"/>'s reason.
/// </summary>
public sealed class TierSpecConverter : TypeConverter
{
    /// <inheritdoc />
    public override bool CanConvertFrom(ITypeDescriptorContext? context, Type sourceType) =>
        sourceType == typeof(string) || base.CanConvertFrom(context, sourceType);

    /// <inheritdoc />
    public override bool CanConvertTo(ITypeDescriptorContext? context, Type? destinationType) =>
        destinationType == typeof(string) || base.CanConvertTo(context, destinationType);

    /// <inheritdoc />
    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value)
    {
        if (value is not string text)
        {
            return base.ConvertFrom(context, culture, value);
        }

        return TierSpec.TryParse(text.Trim(), out var spec, out var error) ? spec : throw new FormatException(error);
    }

    /// <inheritdoc />
    public override object? ConvertTo(ITypeDescriptorContext? context, CultureInfo? culture, object? value, Type destinationType) =>
        destinationType == typeof(string) && value is TierSpec spec ? spec.ToString() : base.ConvertTo(context, culture, value, destinationType);
}
