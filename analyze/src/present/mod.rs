//! Presenting decisions: the report for a terminal, Markdown or JSON (`render`), query results in
//! the format asked for (`output`), the nightly HTML pages (`pages`) and the results history every
//! run appends to (`history`), which SQL reads back.

pub mod history;
pub mod output;
pub mod pages;
pub mod render;
