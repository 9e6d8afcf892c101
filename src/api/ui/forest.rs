//! The forest plot: every arm × metric effect as a relative lift with its CI, one row each,
//! against a vertical line at no change (as GrowthBook's and Eppo's result pages show them).

use plotters::prelude::*;
use plotters::style::text_anchor;

use super::charts::{failed, frame, vertical, with_title, Axes, BLUE, INK, RED};

/// One row: a label, the relative lift and its CI (fractions: 0.01 is +1%).
pub struct ForestRow {
    pub label: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// The metric's direction: which side of zero is harmful.
    pub higher_is_better: bool,
    /// Where the CI of the test behind the row's p-value (the absolute difference) lies: −1
    /// wholly below zero, +1 wholly above, 0 across it. The colour follows it, so a row is
    /// coloured exactly when its unadjusted p is below 1 − confidence.
    pub side: i8,
}

/// Pixels per row, and the chart's fixed height outside its rows.
const ROW: u32 = 28;
const CHROME: u32 = 92;
/// Width of the label column.
const LABELS: u32 = 240;

/// The x range in percent: every CI and zero, padded.
fn x_range(rows: &[ForestRow]) -> (f64, f64) {
    let (lo, hi) = rows
        .iter()
        .flat_map(|r| [r.low, r.high, r.estimate])
        .filter(|v| v.is_finite())
        .fold((0.0_f64, 0.0_f64), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.08).max(1e-6);
    ((lo - pad) * 100.0, (hi + pad) * 100.0)
}

/// Labels longer than this many characters are cut with an ellipsis (the table under the
/// chart has them whole).
const LABEL_CHARS: usize = 34;

fn short(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        label.to_owned()
    } else {
        let head: String = label.chars().take(LABEL_CHARS - 1).collect();
        format!("{head}…")
    }
}

/// The forest plot as an SVG document: a square per estimate, its CI as a bar (red when the
/// CI lies wholly on the harmful side of zero for the metric's direction, blue wholly on the
/// beneficial side, grey across zero), row labels on the left.
pub fn forest(rows: &[ForestRow], title: &str, id: &str) -> Result<String, String> {
    let (x0, x1) = x_range(rows);
    let n = rows.len().max(1);
    let height = CHROME + ROW * n as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, height)).into_drawing_area();
        let axes = Axes {
            x: (x0, x1),
            // Row i sits at y = n − i − ½, so the first row is on top.
            y: (0.0, n as f64),
            x_desc: "relative change against control (%)",
            y_desc: None,
            y_area: LABELS,
        };
        let mut chart = frame(&root, &axes)?;
        vertical(&mut chart, 0.0, INK.stroke_width(1))?;
        let label_style = TextStyle::from(("sans-serif", 13).into_font())
            .color(&INK)
            .pos(text_anchor::Pos::new(
                text_anchor::HPos::Right,
                text_anchor::VPos::Center,
            ));
        for (i, r) in rows.iter().enumerate() {
            let y = n as f64 - i as f64 - 0.5;
            let harmful_side = if r.higher_is_better { -1 } else { 1 };
            let (harmful, beneficial) = (r.side == harmful_side, r.side == -harmful_side);
            let colour = if harmful {
                RED
            } else if beneficial {
                BLUE
            } else {
                RGBColor(110, 110, 110)
            };
            let (lo, hi, e) = (r.low * 100.0, r.high * 100.0, r.estimate * 100.0);
            if lo.is_finite() && hi.is_finite() {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(lo, y), (hi, y)],
                        colour.stroke_width(2),
                    )))
                    .map_err(failed)?;
            }
            if e.is_finite() {
                let (px, py) = chart.backend_coord(&(e, y));
                root.draw(&Rectangle::new(
                    [(px - 5, py - 5), (px + 5, py + 5)],
                    colour.filled(),
                ))
                .map_err(failed)?;
            }
            let (_, py) = chart.backend_coord(&(x0, y));
            root.draw(&Text::new(
                short(&r.label),
                (16 + LABELS as i32 - 8, py),
                label_style.clone(),
            ))
            .map_err(failed)?;
        }
        root.present().map_err(failed)?;
    }
    Ok(with_title(&out, id, title))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_square_and_one_bar_per_row_and_labels_escaped() {
        let rows: Vec<ForestRow> = (0..4)
            .map(|i| ForestRow {
                label: format!("arm_{i} · <kpi>"),
                estimate: -0.01 * f64::from(i),
                low: -0.01 * f64::from(i) - 0.005,
                high: -0.01 * f64::from(i) + 0.005,
                higher_is_better: i != 3,
                side: if i == 0 { 0 } else { -1 },
            })
            .collect();
        let svg = forest(&rows, "effects", "fp").unwrap();
        // The frame is a rect too; the squares are the 10×10 ones.
        assert_eq!(svg.matches(r#"width="10" height="10""#).count(), 4, "{svg}");
        assert!(svg.contains("arm_3 · &lt;kpi&gt;"), "{svg}");
        // A fall where higher is better is red, one where lower is better blue; a CI across
        // zero is grey.
        assert!(svg.contains("#BE1E2D"), "{svg}");
        assert!(svg.contains("#1F5AA6"), "{svg}");
        assert!(svg.contains("#6E6E6E"), "{svg}");
    }

    #[test]
    fn long_labels_are_cut() {
        let long = "x".repeat(80);
        assert_eq!(short(&long).chars().count(), LABEL_CHARS);
        assert_eq!(short("cart"), "cart");
    }
}
