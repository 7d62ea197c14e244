//! Text in and out for Job B: sentence encoders run in Rust (BERT on
//! recur's own CPU forward, T5 via candle-transformers), fetching them and the corpus sources into a
//! cache, reading documents and splitting them into sentence chunks, and
//! building the chunks `.npz` that `recur lvm train` reads.

mod bert;
pub mod chunk;
pub mod corpus;
#[cfg(feature = "fetch")]
pub mod demo;
pub mod encoder;
pub mod fetch;
pub mod sources;
pub mod tiny;
pub mod wikitext;

pub use encoder::SentenceEncoder;
