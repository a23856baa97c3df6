//! Checks of payment pages (PCI DSS 6.4.3 and 11.6.1): a page is loaded in a
//! fresh headless Chromium and what it ran and sent is recorded as a
//! [`vakt_event::page::PageSnapshot`].

pub mod browser;
pub mod cdp;
pub mod compare;
pub mod csp;
pub mod inventory;
pub mod site;

pub use browser::{check, CanaryFill, CheckOptions, Step};
