from django import template

register = template.Library()


@register.filter
def savings(before: int | None, after: int | None) -> str:
    """ "85.2%" saved going from ``before`` to ``after`` bytes; "—" when there is nothing."""
    if not before or after is None:
        return "—"
    return f"{100 * (1 - after / before):.1f}%"


@register.filter
def seconds(value: float | None) -> str:
    """A processing time: "0.42 s", "12 s", "3 min 5 s"."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.0f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


@register.filter
def any_ssim(variants) -> bool:
    """Whether any variant had its SSIM measured (the column is shown only then)."""
    return any(variant.ssim is not None for variant in variants)
