//! (skeleton: being written)
use crate::error::{Error, Result};
use crate::value::SecretValue;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    text: String,
}

impl Reference {
    pub fn parse(rest: &str) -> Result<Self> {
        Ok(Self {
            text: rest.to_owned(),
        })
    }

    pub fn fetch(&self) -> Result<SecretValue> {
        Err(Error::Remote {
            reference: self.text.clone(),
            message: "not built yet".into(),
            hint: String::new(),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
