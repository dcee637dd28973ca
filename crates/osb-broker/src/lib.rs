pub mod backends;
