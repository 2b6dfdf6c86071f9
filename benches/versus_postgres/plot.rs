//! The plot of ingest throughput against the number of groups, drawn by the
//! benchmark itself (plotters, PNG). Text is drawn with DejaVu Sans from
//! Debian's fonts-dejavu-core, which `tests/run.sh` installs.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::register_font;

use crate::common::BenchResult;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// One line: a system's rows per second at each number of groups.
pub struct Series {
    pub name: &'static str,
    pub points: Vec<(u64, f64)>,
}

/// Draws `series` on log-log axes into the PNG at `path`.
pub fn throughput_vs_groups(path: &Path, caption: &str, series: &[Series]) -> BenchResult<()> {
    load_font()?;
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_min, mut y_max) = (10u64, f64::MAX, 1.0f64);
    for &(x, y) in all {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d((1u64..x_max * 2).log_scale(), ((y_min / 2.0).max(1.0)..y_max * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("groups (distinct keys)")
        .y_desc("ingest, rows per second")
        .label_style(("sans-serif", 15))
        .y_label_formatter(&|y| crate::common::thousands(*y))
        .x_label_formatter(&|x| crate::common::thousands(*x as f64))
        .draw()?;
    let colors = [RGBColor(0, 114, 178), RGBColor(213, 94, 0), RGBColor(0, 158, 115), RGBColor(204, 121, 167)];
    for (s, color) in series.iter().zip(colors.iter().cycle()) {
        let style = ShapeStyle::from(color).stroke_width(3);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn load_font() -> BenchResult<()> {
    static ONCE: Once = Once::new();
    let bytes = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e}; tests/run.sh installs fonts-dejavu-core"))?;
    let mut result = Ok(());
    ONCE.call_once(|| {
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        result = register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| format!("{FONT} is not a font"));
    });
    Ok(result?)
}
