//! ws2017 behaviour, rule by rule.
