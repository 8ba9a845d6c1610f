//! `constnet plot`: draws a metrics log's curves as an SVG (what `train` writes beside the
//! model at the end of a run): the loss per logged step and per epoch above, the training and
//! test accuracy per epoch below.

use crate::record;
use plotters::prelude::*;
use serde_json::Value;
use std::error::Error;
use std::path::{Path, PathBuf};

/// Draw a training run's metrics log (loss and accuracy curves) as an SVG
#[derive(clap::Args)]
pub struct Args {
    /// The metrics log (JSON lines, e.g. model.metrics.jsonl)
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// The SVG to write [default: LOG with extension .svg]
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let out = args.out.unwrap_or_else(|| record::plot_path(&args.log));
    draw(&args.log, &out)?;
    say!("wrote {}", out.display());
    Ok(())
}

/// The curves of a log.
#[derive(Default)]
struct Curves {
    /// (step, loss) of each logged step.
    steps: Vec<(f64, f64)>,
    /// (step, mean training loss) at each epoch's end.
    epoch_loss: Vec<(f64, f64)>,
    /// (epoch, accuracy %) on the training images, the validation split (with `--val`) and
    /// the test set.
    train_accuracy: Vec<(f64, f64)>,
    val_accuracy: Vec<(f64, f64)>,
    test_accuracy: Vec<(f64, f64)>,
}

/// Reads a metrics log; every line must be a JSON object.
fn read(log: &Path) -> Result<Curves, Box<dyn Error>> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut c = Curves::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |why: &str| format!("{}: line {}: {why}", log.display(), i + 1);
        let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let num = |k: &str| v.get(k).and_then(Value::as_f64);
        match v.get("kind").and_then(Value::as_str) {
            Some("step") => {
                if let (Some(s), Some(l)) = (num("step"), num("loss")) {
                    c.steps.push((s, l));
                }
            }
            Some("epoch") => {
                let e = num("epoch").ok_or_else(|| bad("an epoch line without \"epoch\""))?;
                if let (Some(s), Some(l)) = (num("step"), num("train_loss")) {
                    c.epoch_loss.push((s, l));
                }
                if let Some(a) = num("train_accuracy") {
                    c.train_accuracy.push((e, 100.0 * a));
                }
                if let Some(a) = num("val_accuracy") {
                    c.val_accuracy.push((e, 100.0 * a));
                }
                if let Some(a) = num("test_accuracy") {
                    c.test_accuracy.push((e, 100.0 * a));
                }
            }
            Some(_) => {}
            None => return Err(bad("not a metrics record (no \"kind\")").into()),
        }
    }
    if c.steps.is_empty() && c.epoch_loss.is_empty() {
        return Err(format!("{}: no step or epoch records to plot", log.display()).into());
    }
    Ok(c)
}

/// Draws the log's curves into `out`.
pub fn draw(log: &Path, out: &Path) -> Result<(), Box<dyn Error>> {
    let c = read(log)?;
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", out.display());
    let root = SVGBackend::new(out, (960, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(360);
    loss_chart(&top, &c).map_err(|e| fail(&e))?;
    accuracy_chart(&bottom, &c).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// The training curve's colour: plotters' GREEN is too light on white.
const DARK_GREEN: RGBColor = RGBColor(0, 140, 0);

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult =
    Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>>;

fn loss_chart(area: &Area<'_>, c: &Curves) -> DrawResult {
    let all = c.steps.iter().chain(&c.epoch_loss);
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .fold(0.1, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("training loss", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    chart
        .draw_series(LineSeries::new(c.steps.iter().copied(), &BLUE))?
        .label("logged steps (mean since the last)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            c.epoch_loss.iter().copied(),
            RED.stroke_width(2),
        ))?
        .label("epoch mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

fn accuracy_chart(area: &Area<'_>, c: &Curves) -> DrawResult {
    let all = c
        .train_accuracy
        .iter()
        .chain(&c.val_accuracy)
        .chain(&c.test_accuracy);
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_min = all.map(|p| p.1).fold(100.0, f64::min);
    // Zoomed on the values: MNIST accuracies differ in the first decimals.
    let lo = (y_min - 1.0).clamp(0.0, 99.0).floor();
    let mut chart = ChartBuilder::on(area)
        .caption("accuracy after each epoch (%)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5..x_max + 0.5, lo..100.0)?;
    // Ticks at whole epochs only.
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy %")
        .x_labels(x_max as usize + 2)
        .x_label_formatter(&|x| match x.fract() {
            0.0 => format!("{x:.0}"),
            _ => String::new(),
        })
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            c.train_accuracy.iter().copied(),
            DARK_GREEN.stroke_width(2),
        ))?
        .label("train (first 10,000 images)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], DARK_GREEN));
    chart
        .draw_series(LineSeries::new(
            c.test_accuracy.iter().copied(),
            MAGENTA.stroke_width(2),
        ))?
        .label("test")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MAGENTA));
    if !c.val_accuracy.is_empty() {
        chart
            .draw_series(LineSeries::new(
                c.val_accuracy.iter().copied(),
                BLUE.stroke_width(2),
            ))?
            .label("validation (--val)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}
