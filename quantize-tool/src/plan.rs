//! Offline memory planning: places every arena tensor so that tensors alive at the same time
//! never share bytes, reusing space between tensors whose lifetimes do not overlap.

use ember::format::writer::ModelBuilder;

/// Alignment of every planned tensor.
const ALIGN: usize = 16;

/// The outcome of planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanReport {
    /// Arena bytes the plan needs.
    pub arena_bytes: usize,
    /// Sum of all activation sizes (what a plan without reuse would need).
    pub unshared_bytes: usize,
}

struct Placed {
    offset: usize,
    end: usize,
    first: u16,
    last: u16,
}

/// Greedy-by-size first-fit planning (as TFLite Micro's greedy planner): the largest tensors
/// are placed first, each at the lowest aligned offset free for its whole lifetime.
pub fn plan(builder: &mut ModelBuilder) -> PlanReport {
    let lifetimes = builder.lifetimes();
    let mut order: Vec<u16> =
        (0..builder.tensor_count() as u16).filter(|&id| builder.is_arena_root(id)).collect();
    order.sort_by_key(|&id| (std::cmp::Reverse(builder.byte_len(id)), id));
    let mut placed: Vec<Placed> = Vec::with_capacity(order.len());
    let mut unshared = 0;
    for id in order {
        let len = builder.byte_len(id).next_multiple_of(ALIGN);
        unshared += len;
        let (first, last) = lifetimes[id as usize];
        let mut busy: Vec<(usize, usize)> =
            placed.iter().filter(|p| p.first <= last && first <= p.last).map(|p| (p.offset, p.end)).collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + len <= start {
                break;
            }
            offset = offset.max(end.next_multiple_of(ALIGN));
        }
        builder.place(id, offset);
        placed.push(Placed { offset, end: offset + len, first, last });
    }
    let arena_bytes = placed.iter().map(|p| p.end).max().unwrap_or(0);
    builder.arena_bytes(arena_bytes);
    PlanReport { arena_bytes, unshared_bytes: unshared }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember::format::params::PadParams;
    use ember::format::writer::IoDesc;
    use ember::format::{DType, OpKind};

    /// A chain of 1-D f32 pads growing through `sizes`.
    fn chain(sizes: &[usize]) -> ModelBuilder {
        let mut b = ModelBuilder::new();
        let ids: Vec<u16> = sizes.iter().map(|&n| b.activation(DType::F32, &[n], None).unwrap()).collect();
        for (w, s) in ids.windows(2).zip(sizes.windows(2)) {
            let mut p = PadParams { pads: [[0; 2]; 6], value: 0.0, qvalue: 0 };
            p.pads[0][1] = (s[1] - s[0]) as u32;
            b.op(OpKind::Pad, &[w[0]], &[w[1]], &p).unwrap();
        }
        let io =
            |t: u16, n: usize| IoDesc { tensor: t, name: "x".into(), onnx_shape: vec![n], perm: vec![0] };
        b.input(io(ids[0], sizes[0]));
        b.output(io(*ids.last().unwrap(), *sizes.last().unwrap()));
        b
    }

    #[test]
    fn chain_reuses_memory_of_dead_tensors() {
        let mut b = chain(&[50, 100, 150, 200]);
        let report = plan(&mut b);
        assert_eq!(report.unshared_bytes, 208 + 400 + 608 + 800);
        // Largest first: t3 (ops 2..2) at 0, t2 (1..2) after it at 800, t1 (0..1) reuses 0,
        // t0 (0..0) goes after t1 at 400.
        assert_eq!(report.arena_bytes, 800 + 608);
        let bytes = b.finish().unwrap();
        let aligned = ember::AlignedBytes::new(&bytes);
        let model = ember::Model::from_bytes(&aligned).expect("plan passes the runtime's checks");
        assert_eq!(model.arena_bytes(), 1408);
        let offsets: Vec<usize> = (0..4).map(|t| model.tensor(t).unwrap().offset).collect();
        assert_eq!(offsets, [400, 0, 800, 0]);
    }
}
