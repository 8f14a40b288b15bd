"""Task-aligned assignment and the loss: positives inside objects, and learning happens."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from streamseg.train.data import TrainDataset, collate, images_to_input
from streamseg.train.loss import (
    LossWeights,
    Targets,
    box_iou_pairwise,
    segment_loss,
    tal_assign,
)
from streamseg.train.net import (
    NetConfig,
    RawOutput,
    SegLite,
    dfl_decode,
    dist_to_xyxy,
    make_anchors,
)


def _grid() -> torch.Tensor:
    anchors, _ = make_anchors([(8, 12), (4, 6), (2, 3)], (8, 16, 32), torch.device("cpu"))
    return anchors


def test_positives_lie_inside_their_objects() -> None:
    anchors = _grid()
    a = anchors.shape[0]
    gt = torch.tensor(
        [
            [[10.0, 10.0, 40.0, 30.0], [50.0, 20.0, 90.0, 60.0], [0, 0, 0, 0]],
            [[5.0, 5.0, 90.0, 60.0], [0, 0, 0, 0], [0, 0, 0, 0]],
        ]
    )
    valid = torch.tensor([[True, True, False], [True, False, False]])
    labels = torch.tensor([[0, 1, 0], [1, 0, 0]])
    torch.manual_seed(0)
    scores = torch.rand(2, a, 2)
    # Predicted boxes: a 16-pixel square around each anchor.
    pd = torch.cat((anchors - 8, anchors + 8), 1).expand(2, -1, -1)
    asg = tal_assign(scores, pd, anchors, labels, gt, valid, topk=5)
    for b in range(2):
        fg = asg.fg[b]
        assert bool(fg.any())
        for i in fg.nonzero().view(-1).tolist():
            j = int(asg.gt_index[b, i])
            assert bool(valid[b, j]), "a padding row received a positive"
            x, y = anchors[i].tolist()
            x1, y1, x2, y2 = gt[b, j].tolist()
            assert x1 < x < x2 and y1 < y < y2
            assert int(asg.scores[b, i].argmax()) == int(labels[b, j])
        # every real object has between 1 and topk positives
        for j in range(3):
            n = int((fg & (asg.gt_index[b] == j)).sum())
            assert (1 <= n <= 5) if valid[b, j] else n == 0
    assert torch.all(asg.scores[~asg.fg] == 0)


def test_tiny_object_still_gets_a_positive() -> None:
    """A 3-pixel ball between anchor centres must not be left without candidates."""
    anchors = _grid()
    gt = torch.tensor([[[9.0, 9.0, 12.0, 12.0]]])  # no stride-8 centre (4, 12, ...) inside
    scores = torch.full((1, anchors.shape[0], 1), 0.1)
    pd = torch.cat((anchors - 4, anchors + 4), 1).unsqueeze(0)
    asg = tal_assign(
        scores, pd, anchors, torch.zeros(1, 1, dtype=torch.long), gt, torch.ones(1, 1).bool()
    )
    assert int(asg.fg.sum()) >= 1


def test_ciou_of_identical_boxes_is_one() -> None:
    b = torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 6.0, 9.0]])
    torch.testing.assert_close(box_iou_pairwise(b, b, ciou=True), torch.ones(2), atol=1e-5, rtol=0)
    far = torch.tensor([[100.0, 100.0, 110.0, 120.0], [50.0, 5.0, 51.0, 9.0]])
    assert torch.all(box_iou_pairwise(b, far, ciou=True) < 0)


def test_a_few_steps_lower_the_loss(shapes_source: object) -> None:
    torch.manual_seed(0)
    ds = TrainDataset(shapes_source, (64, 96), seed=3)  # type: ignore[arg-type]
    images, targets = collate([ds[i] for i in range(4)])
    assert bool(targets.valid.any())
    net = SegLite(NetConfig(num_classes=3, num_masks=8)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    x = images_to_input(images)
    losses, masks = [], []
    for _ in range(25):
        parts = segment_loss(net(x), targets, net.cfg.reg_max)
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        losses.append(float(parts.total.detach()))
        masks.append(parts.mask)
        assert parts.num_pos > 0
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    assert np.mean(masks[-3:]) < 0.7 * np.mean(masks[:3])


def test_a_few_steps_lower_the_input_resolution_mask_loss(shapes_source: object) -> None:
    torch.manual_seed(0)
    ds = TrainDataset(shapes_source, (64, 96), seed=3)  # type: ignore[arg-type]
    images, targets = collate([ds[i] for i in range(4)])
    net = SegLite(NetConfig(num_classes=3, num_masks=8)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    x = images_to_input(images)
    weights = LossWeights(mask=0.0, mask_roi=7.5)
    rois = []
    for _ in range(25):
        parts = segment_loss(net(x), targets, net.cfg.reg_max, weights=weights)
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        rois.append(parts.mask_roi)
    assert rois[0] > 0
    assert np.mean(rois[-3:]) < 0.7 * np.mean(rois[:3])


def test_a_ball_at_a_players_feet_keeps_its_anchor() -> None:
    """An anchor claimed by a player and the ball at its feet goes to the ball (the smaller).

    Every prediction fits the player's box, so the highest-IoU rule would give the player the
    ball's only candidate anchors and leave the ball to be learnt as background.
    """
    anchors = _grid()
    player = [20.0, 8.0, 44.0, 62.0]
    ball = [25.0, 50.0, 33.0, 58.0]  # inside the player's box, around the stride-8 centre (28, 52)
    gt = torch.tensor([[player, ball]])
    labels = torch.tensor([[0, 1]])
    scores = torch.full((1, anchors.shape[0], 2), 0.5)
    pd = torch.tensor(player).expand(1, anchors.shape[0], 4)
    # topk above the player's candidate count: the player claims every anchor in its box.
    asg = tal_assign(scores, pd, anchors, labels, gt, torch.ones(1, 2).bool(), topk=40)
    owners = asg.gt_index[0][asg.fg[0]]
    assert int((owners == 1).sum()) >= 1, "the ball lost every anchor to the player"
    assert int((owners == 0).sum()) >= 1
    for i in (asg.fg[0] & (asg.gt_index[0] == 1)).nonzero().view(-1).tolist():
        x, y = anchors[i].tolist()
        assert ball[0] < x < ball[2] and ball[1] < y < ball[3]
        assert asg.boxes_xyxy[0, i].tolist() == ball
        assert float(asg.scores[0, i, 0]) == 0.0, "the ball's anchor still taught 'player'"


def _dfl_logits(dist: torch.Tensor, reg_max: int) -> torch.Tensor:
    """DFL logits [A, 4 * reg_max] that decode to ``dist`` [A, 4] (strides; two-hot bins)."""
    d = dist.clamp(0, reg_max - 1.01)
    lo = d.floor().long()
    w_hi = d - lo
    prob = torch.full((*d.shape, reg_max), 1e-6)
    prob.scatter_(-1, lo.unsqueeze(-1), (1 - w_hi).unsqueeze(-1) + 1e-6)
    prob.scatter_(-1, (lo + 1).unsqueeze(-1), w_hi.unsqueeze(-1) + 1e-6)
    return prob.log().reshape(d.shape[0], 4 * reg_max)


def test_a_badly_predicted_positive_still_pulls_its_box() -> None:
    """A ball at a player's feet whose anchors all predict the player's box: their class target
    is tiny (it scales with the IoU), and ``min_box_weight`` keeps their box loss alive.

    The gradient on the box logits of those anchors grows with the floor; on anchors whose
    target is above it (the player's) and on negatives it does not change.
    """
    anchors, strides = make_anchors([(8, 12), (4, 6), (2, 3)], (8, 16, 32), torch.device("cpu"))
    a, reg_max, nm = anchors.shape[0], 16, 4
    player = torch.tensor([20.0, 8.0, 44.0, 62.0])
    targets = Targets(
        labels=torch.tensor([[0, 1]]),
        boxes_xyxy=torch.stack((player, torch.tensor([25.0, 50.0, 33.0, 58.0]))).unsqueeze(0),
        masks=torch.ones(1, 2, 16, 24),
        valid=torch.ones(1, 2, dtype=torch.bool),
    )
    # Every anchor predicts the player's box.
    dist = torch.cat((anchors - player[:2], player[2:] - anchors), 1) / strides
    logits = _dfl_logits(dist, reg_max).unsqueeze(0)
    cls = torch.full((1, a, 2), -1.0)

    def box_grad(floor: float) -> torch.Tensor:
        box = logits.clone().requires_grad_(True)
        raw = RawOutput(
            box, cls, torch.zeros(1, a, nm), torch.zeros(1, nm, 16, 24), anchors, strides
        )
        segment_loss(raw, targets, reg_max, min_box_weight=floor).total.backward()
        assert box.grad is not None
        return box.grad[0].norm(dim=-1)

    plain, floored = box_grad(0.0), box_grad(0.25)
    pd = dist_to_xyxy(dfl_decode(logits, reg_max) * strides, anchors)
    asg = tal_assign(cls.sigmoid(), pd, anchors, targets.labels, targets.boxes_xyxy, targets.valid)
    target = asg.scores[0].sum(-1)
    ball = asg.fg[0] & (asg.gt_index[0] == 1)
    high = asg.fg[0] & (target >= 0.25)
    assert bool(ball.any()) and bool(high.any())
    assert torch.all(target[ball] < 0.05)
    assert torch.all(floored[ball] > 4 * plain[ball])
    torch.testing.assert_close(floored[high], plain[high])
    torch.testing.assert_close(floored[~asg.fg[0]], plain[~asg.fg[0]])


def test_roi_mask_loss_scores_the_pixels_the_runtime_thresholds() -> None:
    """The input-resolution mask term reads the mask logits where the runtime's bilinear
    upsampling of the prototypes puts them (``align_corners=False``), at each grid pixel.

    One prototype holds a random logit field and every positive's coefficient is 1, so the
    predicted logit of pixel (x, y) is the field upsampled 4x at (x, y). The loss against any
    target must equal the BCE computed from that upsampled field; and a target made of the
    field's own signs must score lower than the same target shifted by two pixels.
    """
    from streamseg.train.augment import ROI_SIZE, roi_points
    from streamseg.train.loss import Assignment, _roi_mask_loss

    torch.manual_seed(0)
    hp, wp = 16, 24
    field = torch.randn(1, 1, hp, wp) * 4
    up = F.interpolate(field, scale_factor=4, mode="bilinear", align_corners=False)[0, 0]
    boxes = [np.array([5.0, 7.0, 17.0, 15.0], np.float32), np.array([40, 2, 90, 60], np.float32)]
    xy = [roi_points(b, (64, 96)) for b in boxes]
    roi_xy = torch.stack([torch.from_numpy(np.stack(p)) for p in xy]).unsqueeze(0)
    signs = torch.stack(
        [(up[torch.from_numpy(ys).long()][:, torch.from_numpy(xs).long()] > 0) for xs, ys in xy]
    ).unsqueeze(0)
    fg = torch.zeros(1, 10, dtype=torch.bool)
    fg[0, [1, 4, 7]] = True
    gt_index = torch.tensor([[0, 0, 0, 0, 1, 0, 0, 1, 0, 0]])
    asg = Assignment(fg, gt_index, torch.zeros(1, 10, 2), torch.zeros(1, 10, 4))
    coef = torch.ones(1, 10, 1)

    def expected(target: torch.Tensor) -> torch.Tensor:
        losses = []
        for k in (0, 1, 1):  # the objects of anchors 1, 4 and 7
            xs, ys = (torch.from_numpy(v).long() for v in xy[k])
            pred = up[ys][:, xs]
            losses.append(F.binary_cross_entropy_with_logits(pred, target[0, k].float()))
        return torch.stack(losses).sum() / 3

    got = _roi_mask_loss(coef, field[0:1].expand(1, 1, hp, wp), asg, roi_xy, signs, 3)
    torch.testing.assert_close(got, expected(signs))
    assert signs.shape == (1, 2, ROI_SIZE, ROI_SIZE)
    shifted = torch.roll(signs, 2, dims=-1)
    worse = _roi_mask_loss(coef, field, asg, roi_xy, shifted, 3)
    torch.testing.assert_close(worse, expected(shifted))
    assert float(worse) > float(got)


def test_roi_points_cover_the_box_with_a_margin_inside_the_input() -> None:
    from streamseg.train.augment import ROI_SIZE, roi_points

    xs, ys = roi_points(np.array([10.0, 20.0, 14.0, 23.0], np.float32), (64, 96))
    assert xs.shape == ys.shape == (ROI_SIZE,)
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0)
    # a 4x3 px object: every pixel of it and one pixel of background on each side is sampled
    assert set(range(9, 15)) == set(xs.tolist())
    assert set(range(19, 24)) == set(ys.tolist())
    xs, ys = roi_points(np.array([0.0, 50.0, 96.0, 64.0], np.float32), (64, 96))
    # a box at the input's edges: the margin is clipped, the grid spreads over the box
    assert 0 <= xs.min() < 4 and 92 <= xs.max() <= 95
    assert 48 <= ys.min() <= 50 and ys.max() <= 63


def test_examples_carry_the_visible_mask_at_their_roi_points(shapes_source: object) -> None:
    """The roi target is the full-resolution mask: its share of set points follows the object's
    fill of its box, and each object has set points (no empty targets)."""
    from streamseg.train.data import collate as collate_examples

    ds = TrainDataset(shapes_source, (64, 96), seed=3)  # type: ignore[arg-type]
    examples = [ds[i] for i in range(6)]
    n = 0
    for e in examples:
        assert e.roi.shape == (len(e.labels), 24, 24) and e.roi_xy.shape == (len(e.labels), 2, 24)
        for k in range(len(e.labels)):
            x1, y1, x2, y2 = e.boxes_xyxy[k].tolist()
            xs, ys = e.roi_xy[k].long()
            assert xs.min() >= max(0, x1 - 1 - 0.1 * (x2 - x1)) and xs.max() < min(
                96, x2 + 1 + 0.1 * (x2 - x1)
            )
            assert bool(e.roi[k].any())
            # points outside the tight box are background
            outside = ((xs < x1) | (xs >= x2)).view(1, -1) | ((ys < y1) | (ys >= y2)).view(-1, 1)
            assert not bool((e.roi[k] & outside).any())
            n += 1
    assert n > 0
    _, targets = collate_examples(examples)
    assert targets.roi is not None and targets.roi.shape[2:] == (24, 24)
