//! The `osb-broker` service: configuration, the backends it offers, and the
//! wiring of both into an osbkit [`osbkit::Broker`].

pub mod app;
pub mod backends;
pub mod config;
