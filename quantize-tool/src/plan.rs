//! Offline memory planning: places every arena tensor so that tensors alive at the same time
//! never share bytes, reusing the space of tensors that died, and lets ops that can run in
//! place write their output over an input that dies at them (docs/FORMAT.md §10, check 27).
//!
//! What gets placed are blocks: a root tensor with its reshape aliases and the outputs
//! written in place over it, alive over an inclusive range of ops. The baseline is TFLite
//! Micro's greedy by size: the largest block first, each at the lowest offset free for its
//! whole lifetime (first fit). The chosen plan is the smallest of first fit and best fit
//! (the smallest free gap that holds the block) over several orders — by size and by
//! operator breadth as in Pisarchyk & Lee, "Efficient Memory Management for Deep Neural Net
//! Inference" (2020), by lifetime length, by area and by first use — with and without ops in
//! place. When it needs more than the lower bound (the most bytes alive during one op), a
//! branch and bound search over placement orders with a node budget looks for a smaller
//! one. Every step is deterministic.
//!
//! Kernel scratch is planned too: each op's scratch buffer is a block alive during that op
//! alone, as large as the kernels of the targets the model is planned for need
//! (`ember::kernels::scratch`, asked of the written model: [`ember::Model::scratch_needed`]).

use std::cmp::Reverse;

use ember::format::layout::WeightLayout;
use ember::format::writer::ModelBuilder;
use ember::kernels::scratch::Target;

/// Alignment of every planned tensor.
const ALIGN: usize = 16;

/// Nodes the exact search may visit: a deterministic budget, unlike a time limit.
const SEARCH_NODES: usize = 50_000;

/// What the planner may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Whether ops that can run in place may write their output over an input.
    pub in_place: bool,
    /// The kernel sets whose scratch each op gets (the most any of them needs).
    pub targets: &'static [Target],
    /// The layout of int8 convolution and fully connected weights, applied before planning
    /// ([`ModelBuilder::lay_out_weights`]).
    pub layout: WeightLayout,
}

impl Default for Options {
    fn default() -> Self {
        Self { in_place: true, targets: &Target::ALL, layout: WeightLayout::Standard }
    }
}

/// The outcome of planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanReport {
    /// Arena bytes of the chosen plan (the model's `arena_bytes`).
    pub arena_bytes: usize,
    /// Arena bytes of TFLite Micro's plan, greedy by size with first fit and no op in place:
    /// the baseline, never smaller than `arena_bytes`.
    pub greedy_bytes: usize,
    /// Arena bytes of greedy by size with first fit when ops run in place.
    pub greedy_in_place_bytes: usize,
    /// The most bytes alive during one op with ops in place: no plan needs fewer.
    pub lower_bound_bytes: usize,
    /// Sum of all activation sizes (what a plan without reuse would need).
    pub unshared_bytes: usize,
    /// Ops whose output the chosen plan writes over an input.
    pub in_place_ops: usize,
    /// The largest scratch buffer an op gets (0 if none needs one).
    pub scratch_bytes: usize,
}

/// Plans `builder`'s arena: places every arena tensor and sets `arena_bytes`. The tensors are
/// planned first; if the kernels of `options.targets` need scratch (which the runtime computes
/// on that plan's model), the arena is planned again with it.
pub fn plan(builder: &mut ModelBuilder, options: Options) -> PlanReport {
    let none = vec![0; builder.op_count()];
    if options.targets.iter().all(|&t| t == Target::Reference) {
        return plan_with(builder, options.in_place, &none);
    }
    let mut tensors_only = builder.clone();
    let report = plan_with(&mut tensors_only, options.in_place, &none);
    let scratch = scratch_needs(tensors_only.clone(), options.targets);
    if scratch == none {
        *builder = tensors_only;
        return report;
    }
    plan_with(builder, options.in_place, &scratch)
}

/// Plans `builder`'s arena with `scratch[k]` bytes of scratch for op `k`.
fn plan_with(builder: &mut ModelBuilder, in_place: bool, scratch: &[usize]) -> PlanReport {
    let separate = Blocks::new(builder, false, scratch);
    let merged = Blocks::new(builder, true, scratch);
    let mut chosen = &separate;
    let mut offsets = smallest(&separate.items);
    if in_place {
        // Ops run in place unless that needs more bytes.
        let merged_offsets = smallest(&merged.items);
        if arena(&merged.items, &merged_offsets) <= arena(&separate.items, &offsets) {
            (chosen, offsets) = (&merged, merged_offsets);
        }
    }
    for (block, &offset) in chosen.tensors.iter().zip(&offsets) {
        for &id in block {
            builder.place(id, offset);
        }
    }
    for &(item, op) in &chosen.scratch {
        builder.scratch(op, offsets[item], scratch[op as usize]);
    }
    let arena_bytes = arena(&chosen.items, &offsets);
    builder.arena_bytes(arena_bytes);
    let greedy =
        |blocks: &Blocks| arena(&blocks.items, &place(&blocks.items, &by_size(&blocks.items), Fit::First));
    PlanReport {
        arena_bytes,
        greedy_bytes: greedy(&separate),
        greedy_in_place_bytes: greedy(&merged),
        lower_bound_bytes: lower_bound(&merged.items),
        unshared_bytes: separate.items.iter().map(|i| i.size).sum(),
        in_place_ops: chosen.in_place_ops,
        scratch_bytes: scratch.iter().copied().max().unwrap_or(0),
    }
}

/// Scratch bytes of each op of `planned`: the most the kernels of `targets` need, as the
/// runtime computes it (none if the model does not load: the caller's own validation then
/// reports why).
fn scratch_needs(planned: ModelBuilder, targets: &[Target]) -> Vec<usize> {
    let mut needs = vec![0; planned.op_count()];
    let Ok(bytes) = planned.finish() else { return needs };
    let bytes = ember::AlignedBytes::new(&bytes);
    let Ok(model) = ember::Model::from_bytes(&bytes) else { return needs };
    for (op, need) in needs.iter_mut().enumerate() {
        for &target in targets {
            *need = (*need).max(model.scratch_needed(op as u16, target).unwrap_or(0));
        }
    }
    needs
}

/// One block to place: its 16-aligned size, its tensors' byte length (the order greedy by
/// size sorts on) and the inclusive op range during which it is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    size: usize,
    len: usize,
    first: u16,
    last: u16,
}

impl Item {
    /// Whether both are alive during some op.
    fn meets(&self, other: &Item) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// The blocks of a model: `items[i]` holds the root tensors `tensors[i]`, or is the scratch
/// of an op in `scratch` (item, op).
struct Blocks {
    items: Vec<Item>,
    tensors: Vec<Vec<u16>>,
    scratch: Vec<(usize, u16)>,
    in_place_ops: usize,
}

impl Blocks {
    /// One block per arena root (aliases follow their root); with `in_place`, each output an
    /// op may write over a dying input joins that input's block. Op `k` with `scratch[k] > 0`
    /// bytes gets a block alive during it alone.
    fn new(b: &ModelBuilder, in_place: bool, scratch: &[usize]) -> Self {
        let lifetimes = b.lifetimes();
        let mut owner: Vec<u16> = (0..b.tensor_count() as u16).collect();
        let mut in_place_ops = 0;
        if in_place {
            for k in 0..b.op_count() {
                if let Some((x, y)) = in_place_pair(b, &lifetimes, k) {
                    owner[y as usize] = owner[x as usize];
                    in_place_ops += 1;
                }
            }
        }
        let mut blocks = Blocks { items: Vec::new(), tensors: Vec::new(), scratch: Vec::new(), in_place_ops };
        let mut block_of: Vec<Option<usize>> = vec![None; owner.len()];
        for id in (0..b.tensor_count() as u16).filter(|&id| b.is_arena_root(id)) {
            let (first, last) = lifetimes[id as usize];
            let len = b.byte_len(id);
            let item = Item { size: len.next_multiple_of(ALIGN), len, first, last };
            match block_of[owner[id as usize] as usize] {
                Some(i) => {
                    let block = &mut blocks.items[i];
                    (block.first, block.last) = (block.first.min(first), block.last.max(last));
                    blocks.tensors[i].push(id);
                }
                None => {
                    block_of[owner[id as usize] as usize] = Some(blocks.items.len());
                    blocks.items.push(item);
                    blocks.tensors.push(vec![id]);
                }
            }
        }
        for (op, &len) in scratch.iter().enumerate().filter(|&(_, &len)| len > 0) {
            let k = op as u16;
            blocks.scratch.push((blocks.items.len(), k));
            blocks.items.push(Item { size: len.next_multiple_of(ALIGN), len, first: k, last: k });
            blocks.tensors.push(Vec::new());
        }
        blocks
    }
}

/// `(x, y)` when op `k` may write its output `y` over its input `x`, as check 27 of
/// docs/FORMAT.md §10 allows: the op can run in place, `x` (the root of one of its inputs)
/// dies at it, is no model input nor the storage of a model output, and has `y`'s byte
/// length and element type.
fn in_place_pair(b: &ModelBuilder, lifetimes: &[(u16, u16)], k: usize) -> Option<(u16, u16)> {
    if !b.op_kind(k)?.runs_in_place() {
        return None;
    }
    let &[y] = b.op_outputs(k) else { return None };
    if !b.is_arena_root(y) || lifetimes[y as usize].0 as usize != k {
        return None;
    }
    let is_io = |x: u16| b.inputs().iter().chain(b.outputs()).any(|d| b.root(d.tensor) == x);
    let ty = b.tensor(y);
    b.op_inputs(k)
        .iter()
        .map(|&input| b.root(input))
        .find(|&x| {
            let tx = b.tensor(x);
            x != y
                && b.is_arena_root(x)
                && lifetimes[x as usize].1 as usize == k
                && (tx.byte_len, tx.dtype) == (ty.byte_len, ty.dtype)
                && !is_io(x)
        })
        .map(|x| (x, y))
}

/// Where a block goes among the blocks alive with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// The lowest free offset.
    First,
    /// The smallest free gap that holds it (the top when none does).
    Best,
}

impl Fit {
    /// The offset for `size` bytes beside the `busy` byte ranges.
    fn offset(self, size: usize, mut busy: Vec<(usize, usize)>) -> usize {
        busy.sort_unstable();
        let mut gap_start = 0;
        let mut best: Option<(usize, usize)> = None;
        for (start, end) in busy {
            if gap_start + size <= start {
                let gap = (start - gap_start, gap_start);
                match self {
                    Fit::First => return gap_start,
                    Fit::Best => best = Some(best.map_or(gap, |b| b.min(gap))),
                }
            }
            gap_start = gap_start.max(end);
        }
        best.map_or(gap_start, |(_, offset)| offset)
    }
}

/// Places `items` one by one in `order` with `fit`; returns each item's offset.
fn place(items: &[Item], order: &[usize], fit: Fit) -> Vec<usize> {
    let mut offsets = vec![0; items.len()];
    for (n, &i) in order.iter().enumerate() {
        let busy = order[..n]
            .iter()
            .filter(|&&j| items[i].meets(&items[j]))
            .map(|&j| (offsets[j], offsets[j] + items[j].size))
            .collect();
        offsets[i] = fit.offset(items[i].size, busy);
    }
    offsets
}

/// Arena bytes of a placement.
fn arena(items: &[Item], offsets: &[usize]) -> usize {
    items.iter().zip(offsets).map(|(item, offset)| offset + item.size).max().unwrap_or(0)
}

/// Bytes alive during each op.
fn breadth(items: &[Item]) -> Vec<usize> {
    let ops = items.iter().map(|i| i.last as usize + 1).max().unwrap_or(0);
    let mut bytes = vec![0; ops];
    for item in items {
        for b in &mut bytes[item.first as usize..=item.last as usize] {
            *b += item.size;
        }
    }
    bytes
}

/// The most bytes alive during one op.
fn lower_bound(items: &[Item]) -> usize {
    breadth(items).into_iter().max().unwrap_or(0)
}

/// Item indices sorted by `key`, then by index.
fn sorted<K: Ord>(items: &[Item], key: impl Fn(&Item) -> K) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (key(&items[i]), i));
    order
}

/// Largest byte length first: TFLite Micro's greedy by size.
fn by_size(items: &[Item]) -> Vec<usize> {
    sorted(items, |i| Reverse(i.len))
}

/// Ops by decreasing breadth, each contributing its unplaced blocks by decreasing size
/// (Pisarchyk & Lee's greedy by breadth).
fn by_breadth(items: &[Item]) -> Vec<usize> {
    let bytes = breadth(items);
    let mut ops: Vec<usize> = (0..bytes.len()).collect();
    ops.sort_by_key(|&op| (Reverse(bytes[op]), op));
    let mut order = Vec::with_capacity(items.len());
    let mut placed = vec![false; items.len()];
    for op in ops {
        let mut alive: Vec<usize> = (0..items.len())
            .filter(|&i| !placed[i] && (items[i].first as usize..=items[i].last as usize).contains(&op))
            .collect();
        alive.sort_by_key(|&i| (Reverse(items[i].size), i));
        for i in alive {
            placed[i] = true;
            order.push(i);
        }
    }
    order
}

/// The smallest placement the heuristics and, when they miss the lower bound, the search find.
fn smallest(items: &[Item]) -> Vec<usize> {
    let span = |i: &Item| usize::from(i.last - i.first) + 1;
    let orders = [
        by_size(items),
        by_breadth(items),
        sorted(items, |i| (Reverse(span(i)), Reverse(i.size))),
        sorted(items, |i| Reverse(i.size * span(i))),
        sorted(items, |i| (i.first, Reverse(i.size))),
    ];
    let best = orders
        .iter()
        .flat_map(|order| [Fit::First, Fit::Best].map(|fit| place(items, order, fit)))
        .min_by_key(|offsets| arena(items, offsets))
        .unwrap_or_default();
    Search::new(items).improve(best)
}

/// Exact search for the smallest placement: depth-first over the order in which blocks are
/// placed, each at its first-fit offset.
///
/// Some optimal placement is reached this way: take the optimal placement with the smallest
/// sum of offsets, and place its blocks by increasing (offset, index) with first fit. Each
/// block then lands at most at its optimal offset (every block placed before it that is
/// alive with it lies below it), so exactly there. Hence the search only follows orders
/// whose offsets increase, and prunes a branch when a block still to place has a free gap
/// that ends below the next offset (it would land below that offset), or when the bytes
/// still to place above the last offset during some op cannot beat the best plan.
struct Search<'a> {
    items: &'a [Item],
    /// For each item, the items alive with it.
    neighbors: Vec<Vec<usize>>,
    /// Offset of each placed item.
    offsets: Vec<Option<usize>>,
    /// Bytes of unplaced items alive during each op.
    unplaced: Vec<usize>,
    /// The most bytes alive during one op.
    lower: usize,
    /// The best placement so far and its arena bytes.
    best: (Vec<usize>, usize),
    /// Nodes visited.
    nodes: usize,
}

impl<'a> Search<'a> {
    fn new(items: &'a [Item]) -> Self {
        let unplaced = breadth(items);
        let lower = unplaced.iter().copied().max().unwrap_or(0);
        let neighbors = items
            .iter()
            .enumerate()
            .map(|(i, item)| (0..items.len()).filter(|&j| j != i && item.meets(&items[j])).collect())
            .collect();
        let offsets = vec![None; items.len()];
        Search { items, neighbors, offsets, unplaced, lower, best: (Vec::new(), 0), nodes: 0 }
    }

    /// `best`, or a smaller placement if the search finds one within its budget.
    fn improve(mut self, best: Vec<usize>) -> Vec<usize> {
        let bytes = arena(self.items, &best);
        self.best = (best, bytes);
        if bytes > self.lower {
            self.visit(None, 0);
        }
        self.best.0
    }

    /// Offset of `item` below, between or above the placed items alive with it.
    fn first_fit(&self, item: usize) -> usize {
        let busy = self.neighbors[item]
            .iter()
            .filter_map(|&j| self.offsets[j].map(|offset| (offset, offset + self.items[j].size)))
            .collect();
        Fit::First.offset(self.items[item].size, busy)
    }

    /// Visits the placements that continue the current one; `last` is the (offset, index)
    /// of the item placed last and `peak` the arena bytes so far.
    fn visit(&mut self, last: Option<(usize, usize)>, peak: usize) {
        if self.nodes >= SEARCH_NODES || self.best.1 <= self.lower {
            return;
        }
        self.nodes += 1;
        let floor = last.map_or(0, |(offset, _)| offset);
        let rest: Vec<(usize, usize)> = (0..self.items.len())
            .filter(|&i| self.offsets[i].is_none())
            .map(|i| (i, self.first_fit(i)))
            .collect();
        if rest.is_empty() {
            if peak < self.best.1 {
                self.best = (self.offsets.iter().map(|o| o.unwrap_or(0)).collect(), peak);
            }
            return;
        }
        if self.bound(floor, peak, &rest) >= self.best.1 {
            return;
        }
        // The smallest end of a free gap, and the next smallest, over the items to place.
        let mut ends = [usize::MAX; 2];
        for &(i, offset) in &rest {
            let end = offset + self.items[i].size;
            if end < ends[0] {
                ends = [end, ends[0]];
            } else if end < ends[1] {
                ends[1] = end;
            }
        }
        let mut children: Vec<(usize, usize)> = rest
            .iter()
            .copied()
            .filter(|&(i, offset)| {
                let others_end = if offset + self.items[i].size == ends[0] { ends[1] } else { ends[0] };
                last.is_none_or(|last| (offset, i) > last) && offset < others_end
            })
            .collect();
        children.sort_by_key(|&(i, offset)| (offset, Reverse(self.items[i].size), i));
        for (i, offset) in children {
            let item = self.items[i];
            self.offsets[i] = Some(offset);
            self.unplaced[item.first as usize..=item.last as usize].iter_mut().for_each(|b| *b -= item.size);
            self.visit(Some((offset, i)), peak.max(offset + item.size));
            self.unplaced[item.first as usize..=item.last as usize].iter_mut().for_each(|b| *b += item.size);
            self.offsets[i] = None;
        }
    }

    /// A lower bound on any completion's arena bytes: every item still to place goes at or
    /// above `floor` and above its current first fit, and during each op the items still to
    /// place need their bytes above `floor` beside the placed ones reaching above it.
    fn bound(&self, floor: usize, peak: usize, rest: &[(usize, usize)]) -> usize {
        let mut above = self.unplaced.clone();
        for (item, offset) in self.items.iter().zip(&self.offsets) {
            let Some(offset) = *offset else { continue };
            let reach = (offset + item.size).saturating_sub(offset.max(floor));
            above[item.first as usize..=item.last as usize].iter_mut().for_each(|b| *b += reach);
        }
        let per_op = above.into_iter().max().unwrap_or(0) + floor;
        let per_item =
            rest.iter().map(|&(i, offset)| offset.max(floor) + self.items[i].size).max().unwrap_or(0);
        peak.max(per_op).max(per_item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember::format::params::{PadParams, UnaryParams};
    use ember::format::writer::IoDesc;
    use ember::format::{DType, OpKind};
    use rand::{RngExt, SeedableRng};

    /// 1-D f32 activations of `sizes` elements; `ops` are `(kind, input, output)` (pads grow
    /// their input to their output's size); tensor 0 is the input and `outputs` the outputs.
    fn model(sizes: &[usize], ops: &[(OpKind, u16, u16)], outputs: &[u16]) -> ModelBuilder {
        let mut b = ModelBuilder::new();
        for &n in sizes {
            b.activation(DType::F32, &[n], None).unwrap();
        }
        for &(kind, x, y) in ops {
            if kind == OpKind::Pad {
                let mut p = PadParams { pads: [[0; 2]; 6], value: 0.0, qvalue: 0 };
                p.pads[0][1] = (sizes[y as usize] - sizes[x as usize]) as u32;
                b.op(kind, &[x], &[y], &p).unwrap();
            } else {
                b.op(kind, &[x], &[y], &UnaryParams { a: 0.0, b: 0.0 }).unwrap();
            }
        }
        let io = |t: u16| IoDesc {
            tensor: t,
            name: format!("t{t}"),
            onnx_shape: vec![sizes[t as usize]],
            perm: vec![0],
        };
        b.input(io(0));
        for &t in outputs {
            b.output(io(t));
        }
        b
    }

    /// Plans `b`, checks the runtime accepts the plan and returns the report and the offsets.
    fn planned(mut b: ModelBuilder, options: Options) -> (PlanReport, Vec<usize>) {
        let report = plan(&mut b, options);
        let n = b.tensor_count() as u16;
        let bytes = ember::AlignedBytes::new(&b.finish().unwrap());
        let model = ember::Model::from_bytes(&bytes).expect("the plan passes the runtime's checks");
        assert_eq!(model.arena_bytes(), report.arena_bytes);
        (report, (0..n).map(|t| model.tensor(t).unwrap().offset).collect())
    }

    #[test]
    fn chain_reuses_memory_of_dead_tensors() {
        use OpKind::Pad;
        let b = model(&[50, 100, 150, 200], &[(Pad, 0, 1), (Pad, 1, 2), (Pad, 2, 3)], &[3]);
        let (report, offsets) = planned(b, Options::default());
        assert_eq!(report.unshared_bytes, 208 + 400 + 608 + 800);
        // Largest first: t3 (ops 2..2) at 0, t2 (1..2) after it at 800, t1 (0..1) reuses 0,
        // t0 (0..0) goes after t1 at 400. That is the lower bound (t2 and t3 at op 2).
        assert_eq!(offsets, [400, 0, 800, 0]);
        let expected = PlanReport {
            arena_bytes: 1408,
            greedy_bytes: 1408,
            greedy_in_place_bytes: 1408,
            lower_bound_bytes: 1408,
            unshared_bytes: 2016,
            in_place_ops: 0,
            scratch_bytes: 0,
        };
        assert_eq!(report, expected);
    }

    #[test]
    fn unary_ops_write_over_dying_inputs() {
        use OpKind::{Pad, Relu, Sigmoid};
        // x → pad → a → relu → b → sigmoid → c: relu and sigmoid run in place over a, then b.
        let ops = [(Pad, 0, 1), (Relu, 1, 2), (Sigmoid, 2, 3)];
        let (report, offsets) = planned(model(&[4, 64, 64, 64], &ops, &[3]), Options::default());
        assert_eq!((report.in_place_ops, report.arena_bytes, report.greedy_bytes), (2, 272, 512));
        assert_eq!(report.greedy_in_place_bytes, 272);
        assert_eq!((offsets[1], offsets[2]), (offsets[2], offsets[3]));
        let (report, _) =
            planned(model(&[4, 64, 64, 64], &ops, &[3]), Options { in_place: false, ..Default::default() });
        assert_eq!((report.in_place_ops, report.arena_bytes), (0, 512));
    }

    #[test]
    fn inputs_outputs_and_tensors_read_later_are_not_overwritten() {
        use OpKind::{Pad, Relu, Sigmoid};
        let in_place = |sizes: &[usize], ops: &[(OpKind, u16, u16)], outputs: &[u16]| {
            planned(model(sizes, ops, outputs), Options::default()).0.in_place_ops
        };
        // The model input.
        assert_eq!(in_place(&[64, 64], &[(Relu, 0, 1)], &[1]), 0);
        // A model output: a is an output, so the sigmoid over it cannot overwrite it.
        assert_eq!(in_place(&[4, 64, 64], &[(Pad, 0, 1), (Sigmoid, 1, 2)], &[2, 1]), 0);
        // Read later: a feeds the relu and the sigmoid; only the sigmoid may overwrite it.
        let ops = [(Pad, 0, 1), (Relu, 1, 2), (Sigmoid, 1, 3)];
        assert_eq!(in_place(&[4, 64, 64, 64], &ops, &[2, 3]), 1);
        // Another size (a pad is no in-place kind anyway; a relu never changes size).
        assert_eq!(in_place(&[4, 64, 80], &[(Pad, 0, 1), (Pad, 1, 2)], &[2]), 0);
    }

    /// Blocks of `size` bytes alive from op `first` to `last`.
    fn items(blocks: &[(usize, u16, u16)]) -> Vec<Item> {
        blocks.iter().map(|&(size, first, last)| Item { size, len: size, first, last }).collect()
    }

    #[test]
    fn search_beats_greedy_by_size() {
        // MobileNet's first layers: input, conv, depthwise, pointwise (VWW int8).
        let items = items(&[(27648, 0, 0), (18432, 0, 1), (18432, 1, 2), (36864, 2, 3)]);
        let greedy = place(&items, &by_size(&items), Fit::First);
        // The pointwise output first at 0, the input there too, the conv output above the input,
        // and the depthwise output above both the pointwise and the conv outputs.
        assert_eq!((greedy.clone(), arena(&items, &greedy)), (vec![0, 27648, 46080, 0], 64512));
        assert_eq!(lower_bound(&items), 55296);
        let searched = Search::new(&items).improve(greedy);
        assert_eq!(arena(&items, &searched), 55296);
        assert_eq!(arena(&items, &smallest(&items)), 55296);
    }

    /// The smallest arena over all placements in 16-byte steps, by backtracking over offsets.
    fn optimum(items: &[Item]) -> usize {
        fn go(items: &[Item], offsets: &mut Vec<usize>, best: &mut usize) {
            let Some(item) = items.get(offsets.len()) else {
                *best = (*best).min(arena(items, offsets));
                return;
            };
            let mut offset = 0;
            while offset + item.size < *best {
                let free = offsets.iter().zip(items).all(|(&o, other)| {
                    !item.meets(other) || o + other.size <= offset || offset + item.size <= o
                });
                if free {
                    offsets.push(offset);
                    go(items, offsets, best);
                    offsets.pop();
                }
                offset += ALIGN;
            }
        }
        let mut best = items.iter().map(|i| i.size).sum::<usize>() + 1;
        go(items, &mut Vec::new(), &mut best);
        best
    }

    #[test]
    fn search_finds_the_optimum_of_small_problems() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut improved = 0;
        for _ in 0..300 {
            let n = rng.random_range(3..=7);
            let blocks: Vec<(usize, u16, u16)> = (0..n)
                .map(|_| {
                    let first = rng.random_range(0..6);
                    (ALIGN * rng.random_range(1..=6), first, first + rng.random_range(0..4))
                })
                .collect();
            let items = items(&blocks);
            let greedy = place(&items, &by_size(&items), Fit::First);
            let best = optimum(&items);
            let searched = arena(&items, &Search::new(&items).improve(greedy.clone()));
            assert_eq!(searched, best, "{blocks:?}");
            improved += usize::from(best < arena(&items, &greedy));
        }
        // Not all instances are easy: greedy by size misses the optimum on some (6 of these).
        assert!(improved > 0);
    }
}
