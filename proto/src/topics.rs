//! The MQTT topic schema.
//!
//! ```text
//! tessera/v1/agents/{agent}/up        agent → relay   (agent publishes; relays read through a shared subscription)
//! tessera/v1/agents/{agent}/down      relay → agent   (agent subscribes)
//! tessera/v1/agents/{agent}/status    retained presence, also the agent's Last Will
//! tessera/v1/operators/{operator}/up  operator tools → relay
//! tessera/v1/operators/{operator}/down relay → operator tools
//! $share/{group}/tessera/v1/agents/+/up      what relay replicas subscribe to
//! ```
//!
//! Every segment is a validated id ([`crate::ids`]), so no id can inject `+`, `#`, `/` or `$`. A broker ACL
//! (`pattern` lines with `%u` = the certificate CN) confines each agent to its own subtree; see
//! [`mosquitto_acl`].

use std::fmt::Write as _;

use crate::ids::{AgentId, OperatorId};

/// Root of every Tessera topic, versioned.
pub const ROOT: &str = "tessera/v1";
/// Shared-subscription group relay replicas join by default.
pub const DEFAULT_RELAY_GROUP: &str = "tessera-relay";

/// Where an agent publishes to the relay.
pub fn agent_up(agent: &AgentId) -> String {
    format!("{ROOT}/agents/{agent}/up")
}

/// Where the relay publishes to an agent.
pub fn agent_down(agent: &AgentId) -> String {
    format!("{ROOT}/agents/{agent}/down")
}

/// An agent's retained presence and Last Will.
pub fn agent_status(agent: &AgentId) -> String {
    format!("{ROOT}/agents/{agent}/status")
}

/// Where an operator's tools publish to the relay.
pub fn operator_up(operator: &OperatorId) -> String {
    format!("{ROOT}/operators/{operator}/up")
}

/// Where the relay answers an operator's tools.
pub fn operator_down(operator: &OperatorId) -> String {
    format!("{ROOT}/operators/{operator}/down")
}

/// The shared subscription relay replicas use for every agent's upward messages.
pub fn relay_agents_up(group: &str) -> String {
    format!("$share/{group}/{ROOT}/agents/+/up")
}

/// The (non-shared) subscription the relay uses for presence: every replica tracks every agent.
pub fn relay_agents_status() -> String {
    format!("{ROOT}/agents/+/status")
}

/// Which side of an agent's subtree a topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentChannel {
    /// `.../up`
    Up,
    /// `.../down`
    Down,
    /// `.../status`
    Status,
}

/// Parses an agent topic into (agent, channel). `None` for anything else, including wildcard or invalid ids.
pub fn parse_agent_topic(topic: &str) -> Option<(AgentId, AgentChannel)> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix("/agents/")?;
    let (agent, channel) = rest.split_once('/')?;
    let channel = match channel {
        "up" => AgentChannel::Up,
        "down" => AgentChannel::Down,
        "status" => AgentChannel::Status,
        _ => return None,
    };
    Some((AgentId::new(agent).ok()?, channel))
}

/// The Mosquitto ACL lines confining agents (CN = username) to their own subtree, and giving relays
/// (usernames listed) the agent and operator trees.
pub fn mosquitto_acl(relay_users: &[&str]) -> String {
    let mut acl = String::from(
        "# Tessera broker ACL. Agents authenticate with their certificate; use_identity_as_username makes the CN\n\
         # (the agent id) the username that %u expands to.\n",
    );
    for relay in relay_users {
        let _ = write!(
            acl,
            "user {relay}\ntopic read {ROOT}/agents/+/up\ntopic read {ROOT}/agents/+/status\n\
             topic write {ROOT}/agents/+/down\ntopic read {ROOT}/operators/+/up\ntopic write {ROOT}/operators/+/down\n\n"
        );
    }
    let _ = write!(
        acl,
        "pattern write {ROOT}/agents/%u/up\npattern read {ROOT}/agents/%u/down\n\
         pattern readwrite {ROOT}/agents/%u/status\n"
    );
    acl
}

#[cfg(test)]
mod tests;
