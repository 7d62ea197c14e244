//! Trains the rainfall classifier from columns in memory, saves it, loads
//! it back and predicts: the library API a program (or the Python
//! package) uses, with no file read but the CSV this example parses
//! itself.
//!
//! ```sh
//! cargo run --release -p recur-dev --example train_in_memory
//! ```

use recur_core::config::Config;
use recur_data::{Column, Table};
use recur_deploy::{score_table, Predictor};
use recur_train::{train_table_to_dir, FitOptions};

const CONFIG: &str = "
data:
  target: {column: rain, horizon: 1}
model: {sequence_length: 32, hidden_size: 64, dropout: 0.3}
training: {epochs: 5, batch_size: 512, learning_rate: 0.0005}
";

fn main() -> recur_core::Result<()> {
    // Columns from the bundled CSV, parsed here (the first, unnamed
    // column is a row number and is left out).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/rainfall.csv");
    let text = std::fs::read_to_string(path).map_err(|e| recur_core::Error::io(path, e))?;
    let mut lines = text.lines();
    let names: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .skip(1)
        .map(String::from)
        .collect();
    let mut columns = vec![Vec::new(); names.len()];
    for line in lines {
        for (c, v) in columns.iter_mut().zip(line.split(',').skip(1)) {
            c.push(v.parse::<f64>().unwrap_or(f64::NAN));
        }
    }
    let columns = columns.into_iter().map(Column::Numeric).collect();
    let table = Table::from_columns("rainfall (in memory)", names, columns)?;

    // Train, save, load, predict.
    let cfg = Config::from_yaml(CONFIG, "the example's config")?;
    let dev = candle_core::Device::Cpu;
    let dir = std::env::temp_dir().join(format!("recur-example-{}", std::process::id()));
    let report = train_table_to_dir(&cfg, &table, &dir, &dev, &FitOptions::default())?;
    let model = Predictor::load(&dir, &dev)?;
    let scores = score_table(&model, table, false)?;
    let last = scores.predictions.last().expect("a prediction");
    println!(
        "trained on {} rows; test AUC {:.4}; {} predictions; the last (row {}): p(rain) {:.3}, decision {}",
        scores.n_rows,
        report.test.as_ref().and_then(|t| t.auc).unwrap_or(f64::NAN),
        scores.predictions.len(),
        last.row,
        last.probability.unwrap_or(f64::NAN),
        last.decision.unwrap_or(0)
    );
    std::fs::remove_dir_all(&dir).map_err(|e| recur_core::Error::io(&dir, e))?;
    Ok(())
}
