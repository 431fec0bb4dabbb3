//! Typed access to ONNX node attributes.

use anyhow::{bail, Result};
use tract_onnx::pb::{AttributeProto, NodeProto};

/// Attribute getters on an ONNX node.
pub(super) trait Attrs {
    /// The attribute named `name`, if present.
    fn attr(&self, name: &str) -> Option<&AttributeProto>;
    /// Integer attribute or default.
    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }
    /// Float attribute or default.
    fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }
    /// String attribute or default.
    fn string(&self, name: &str, default: &str) -> String {
        self.attr(name).map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned())
    }
    /// Integer list attribute, if present.
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
}

impl Attrs for NodeProto {
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name == name)
    }
}

/// The name used for an ONNX node in messages and in the IR (its first output if unnamed).
pub(super) fn node_name(node: &NodeProto) -> &str {
    if !node.name.is_empty() {
        &node.name
    } else {
        node.output.first().map_or(node.op_type.as_str(), String::as_str)
    }
}

/// Normalizes a possibly negative ONNX axis for a tensor of rank `rank`.
pub(super) fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}
