//! Charts drawn on the server as SVG with plotters. Each chart is an image with a title for
//! screen readers (`role="img"`, `<title>`); the page shows the same numbers in a table under
//! a disclosure. Charts sit on a white card, so they read the same in light and dark mode.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One arm of the dose-response chart: its SLI shift (x) and KPI change (y) against control,
/// each with its CI (equal bounds draw no bar: the control arm sits at the origin).
pub struct ArmPoint {
    pub x: f64,
    pub x_low: f64,
    pub x_high: f64,
    pub y: f64,
    pub y_low: f64,
    pub y_high: f64,
}

/// A fitted line through `anchor` with `slope` and the slope's CI (drawn as a band).
pub struct FitLine {
    pub anchor: (f64, f64),
    pub slope: f64,
    pub ci: (f64, f64),
}

/// What the dose-response chart shows.
pub struct DosePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub arms: Vec<ArmPoint>,
    /// The 2SLS line through the control arm.
    pub line: Option<FitLine>,
    /// The knee (estimate, CI), when the analysis found one.
    pub knee: Option<(f64, f64, f64)>,
    /// Where the proposed SLO's tolerated degradation lies on the x axis.
    pub threshold: Option<f64>,
    /// The tolerated KPI change, drawn as a horizontal line.
    pub tolerance: Option<f64>,
}

/// The span of `values` padded by 8% on each side (a unit span around a single value).
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.08
    } else {
        lo.abs().max(1.0) * 0.5
    };
    (lo - pad, hi + pad)
}

/// The chart's x and y ranges: the arms, the knee and the threshold on x; the arms' CIs and
/// the line with its band over the whole x range on y (plotters clamps points outside the
/// plotting area to its edge, which would bend the line).
fn ranges(p: &DosePlot) -> ((f64, f64), (f64, f64)) {
    let (x0, x1) = span(
        p.arms
            .iter()
            .flat_map(|a| [a.x, a.x_low, a.x_high])
            .chain(p.threshold)
            .chain(p.knee.iter().flat_map(|k| [k.1, k.2])),
    );
    let line_ends = p.line.iter().flat_map(|l| {
        let at = move |b: f64, x: f64| l.anchor.1 + b * (x - l.anchor.0);
        [l.slope, l.ci.0, l.ci.1]
            .into_iter()
            .flat_map(move |b| [at(b, x0), at(b, x1)])
    });
    let y = span(
        p.arms
            .iter()
            .flat_map(|a| [a.y_low, a.y_high])
            .chain(p.tolerance)
            .chain(line_ends),
    );
    ((x0, x1), y)
}

/// A chart's plotting area over f64 x and y.
pub(super) type Frame<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// How a chart's axes are labelled.
pub(super) struct Axes<'s> {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub x_desc: &'s str,
    /// None: no y tick labels (the chart draws its own row labels).
    pub y_desc: Option<&'s str>,
    pub y_area: u32,
}

/// Plotters' errors as text (the page logs them and shows the chart's table alone).
pub(super) fn failed(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The white card every chart is drawn on, with its light grid and labelled axes.
pub(super) fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    axes: &Axes<'_>,
) -> Result<Frame<'a, 'b>, String> {
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(axes.y_area)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
        .map_err(failed)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(axes.x_desc)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225));
    match axes.y_desc {
        Some(d) => mesh.y_desc(d),
        None => mesh.y_labels(0).disable_y_mesh(),
    };
    mesh.draw().map_err(failed)?;
    Ok(chart)
}

/// Draws a vertical line at `x` over the y range.
pub(super) fn vertical(chart: &mut Frame<'_, '_>, x: f64, style: ShapeStyle) -> Result<(), String> {
    let (y0, y1) = (chart.y_range().start, chart.y_range().end);
    chart
        .draw_series(LineSeries::new([(x, y0), (x, y1)], style))
        .map(|_| ())
        .map_err(failed)
}

pub(super) const BLUE: RGBColor = RGBColor(31, 90, 166);
pub(super) const INK: RGBColor = RGBColor(20, 20, 20);
pub(super) const RED: RGBColor = RGBColor(190, 30, 45);

/// The dose-response chart as an SVG document: arm points with CI bars, the 2SLS line and
/// its CI band, the knee's interval, the proposed threshold as a vertical line and the
/// tolerated change as a dashed horizontal one.
pub fn dose_response(p: &DosePlot, id: &str) -> Result<String, String> {
    let ((x0, x1), (y0, y1)) = ranges(p);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, 420)).into_drawing_area();
        let axes = Axes {
            x: (x0, x1),
            y: (y0, y1),
            x_desc: &p.x_label,
            y_desc: Some(&p.y_label),
            y_area: 72,
        };
        let mut chart = frame(&root, &axes)?;
        if let Some((_, lo, hi)) = p.knee {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(lo, y0), (hi, y1)],
                    RGBColor(230, 140, 20).mix(0.15).filled(),
                )))
                .map_err(failed)?;
        }
        if let Some(FitLine {
            anchor: (xc, yc),
            slope: b,
            ci: (b_lo, b_hi),
        }) = p.line
        {
            let at = |slope: f64, x: f64| yc + slope * (x - xc);
            let band = vec![
                (x0, at(b_lo, x0)),
                (x1, at(b_lo, x1)),
                (x1, at(b_hi, x1)),
                (x0, at(b_hi, x0)),
            ];
            chart
                .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.12))))
                .map_err(failed)?;
            chart
                .draw_series(LineSeries::new(
                    [(x0, at(b, x0)), (x1, at(b, x1))],
                    BLUE.stroke_width(2),
                ))
                .map_err(failed)?;
        }
        if let Some((k, _, _)) = p.knee {
            vertical(&mut chart, k, RGBColor(180, 95, 6).stroke_width(1))?;
        }
        if let Some(t) = p.threshold {
            vertical(&mut chart, t, RED.stroke_width(2))?;
        }
        if let Some(t) = p.tolerance {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, t), (x1, t)],
                    6,
                    4,
                    RED.stroke_width(1),
                ))
                .map_err(failed)?;
        }
        for a in &p.arms {
            let (cx, cy) = ((x1 - x0) * 0.008, (y1 - y0) * 0.012);
            let mut bars = Vec::new();
            if a.y_high > a.y_low {
                bars.extend([
                    vec![(a.x, a.y_low), (a.x, a.y_high)],
                    vec![(a.x - cx, a.y_low), (a.x + cx, a.y_low)],
                    vec![(a.x - cx, a.y_high), (a.x + cx, a.y_high)],
                ]);
            }
            if a.x_high > a.x_low {
                bars.extend([
                    vec![(a.x_low, a.y), (a.x_high, a.y)],
                    vec![(a.x_low, a.y - cy), (a.x_low, a.y + cy)],
                    vec![(a.x_high, a.y - cy), (a.x_high, a.y + cy)],
                ]);
            }
            chart
                .draw_series(bars.into_iter().map(|b| PathElement::new(b, INK)))
                .map_err(failed)?;
        }
        chart
            .draw_series(
                p.arms
                    .iter()
                    .map(|a| Circle::new((a.x, a.y), 5, INK.filled())),
            )
            .map_err(failed)?;
        root.present().map_err(failed)?;
    }
    Ok(with_title(&out, id, &p.title))
}

/// A series over time: `points` are (Unix seconds, value or none), drawn as a line broken
/// where values are missing, with an optional horizontal reference line.
pub struct TimePlot {
    pub title: String,
    pub y_label: String,
    pub points: Vec<(i64, Option<f64>)>,
    pub reference: Option<f64>,
    /// The y range always includes these values (e.g. 0 and 1 for a budget).
    pub y_floor: (f64, f64),
}

/// The time-series chart as an SVG document; x is days since the first point.
pub fn time_series(p: &TimePlot, id: &str) -> Result<String, String> {
    let t0 = p.points.first().map_or(0, |q| q.0);
    let day = |t: i64| (t - t0) as f64 / 86_400.0;
    let (x0, x1) = (0.0, p.points.last().map_or(1.0, |q| day(q.0)).max(1e-9));
    let values = p.points.iter().filter_map(|q| q.1);
    let lo = values.clone().fold(p.y_floor.0, f64::min);
    let hi = values
        .fold(p.y_floor.1, f64::max)
        .max(p.reference.unwrap_or(f64::MIN));
    let pad = (hi - lo).abs().max(1e-9) * 0.05;
    let from = chrono::DateTime::from_timestamp(t0, 0)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    let x_desc = format!("days since {from}");
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, 300)).into_drawing_area();
        let axes = Axes {
            x: (x0, x1),
            y: (lo - pad, hi + pad),
            x_desc: &x_desc,
            y_desc: Some(&p.y_label),
            y_area: 64,
        };
        let mut chart = frame(&root, &axes)?;
        if let Some(r) = p.reference {
            chart
                .draw_series(LineSeries::new([(x0, r), (x1, r)], RED.stroke_width(1)))
                .map_err(failed)?;
        }
        let mut segment: Vec<(f64, f64)> = Vec::new();
        let mut segments = Vec::new();
        for (t, v) in &p.points {
            match v {
                Some(v) => segment.push((day(*t), *v)),
                None if !segment.is_empty() => segments.push(std::mem::take(&mut segment)),
                None => {}
            }
        }
        segments.push(segment);
        for s in segments.into_iter().filter(|s| !s.is_empty()) {
            chart
                .draw_series(LineSeries::new(s, BLUE.stroke_width(2)))
                .map_err(failed)?;
        }
        root.present().map_err(failed)?;
    }
    Ok(with_title(&out, id, &p.title))
}

/// Marks an SVG document as an image titled `title` (for screen readers and tooltips).
pub(super) fn with_title(svg: &str, id: &str, title: &str) -> String {
    let Some(open_end) = svg.find('>') else {
        return svg.to_owned();
    };
    let (open, rest) = svg.split_at(open_end);
    let open = open.replacen(
        "<svg ",
        &format!(r#"<svg role="img" class="chart" aria-labelledby="{id}-title" "#),
        1,
    );
    format!(
        r#"{open}><title id="{id}-title">{}</title>{}"#,
        maud::html! { (title) }.into_string(),
        &rest[1..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dose_response_chart_draws_one_point_per_arm_and_is_titled() {
        let plot = DosePlot {
            title: "KPI <by> arm".into(),
            x_label: "SLI (ms)".into(),
            y_label: "conversion".into(),
            arms: (0..3)
                .map(|i| {
                    let x = 300.0 + 100.0 * f64::from(i);
                    let y = 0.1 - 0.002 * f64::from(i);
                    ArmPoint {
                        x,
                        x_low: x - 5.0,
                        x_high: x + 5.0,
                        y,
                        y_low: y - 0.001,
                        y_high: y + 0.001,
                    }
                })
                .collect(),
            line: Some(FitLine {
                anchor: (300.0, 0.1),
                slope: -2e-5,
                ci: (-3e-5, -1e-5),
            }),
            knee: Some((420.0, 380.0, 460.0)),
            threshold: Some(450.0),
            tolerance: Some(0.095),
        };
        let svg = dose_response(&plot, "dr").unwrap();
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        assert!(svg.contains("<title id=\"dr-title\">KPI &lt;by&gt; arm</title>"));
    }
}
