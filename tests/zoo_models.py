"""The model zoo of #16, written the way researchers write them in plain torch (attribute-named layers,
functional calls in forward, torchvision's block structure). Small widths keep the tests fast; the
structure is the real one. Imported by tests/test_model_zoo.py and named by it with --model FILE:CLASS."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class SmallVGG(nn.Module):
    def __init__(self, width=4, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(2 * width * 4, 16), nn.ReLU(True), nn.Dropout(), nn.Linear(16, num_classes))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):  # torchvision's
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet18ish(nn.Module):
    """torchvision's resnet18 layout (7x7 stride-2 stem, 3x3 stride-2 max-pool with padding 1, four stages
    of two BasicBlocks, projection shortcuts, adaptive average pooling), narrow, for 3x32x32."""

    def __init__(self, width=4, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = [width, 2 * width, 4 * width, 8 * width]
        stages, cin = [], width
        for i, w in enumerate(widths):
            stages.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(F.relu(self.norm(x)))


class DenseNetish(nn.Module):
    """A DenseNet block as torchvision writes it: every layer sees the concatenation of all before it."""

    def __init__(self, growth=3, layers=3, num_classes=4):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layers = nn.ModuleList(DenseLayer(4 + i * growth, growth) for i in range(layers))
        self.norm = nn.BatchNorm2d(4 + layers * growth)
        self.fc = nn.Linear(4 + layers * growth, num_classes)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        x = F.relu(self.norm(torch.cat(features, 1)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class UNetish(nn.Module):
    """A two-level U-net: max-pool down, ConvTranspose2d up, skip connections concatenated."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU())
        self.bottom = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.up2 = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.dec2 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU())
        self.up1 = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.dec1 = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4 * 8 * 8, num_classes)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(torch.flatten(d1, 1))


class MLP(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.fc1 = nn.Linear(2, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(16, 16)
        self.out = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.drop(F.leaky_relu(self.bn1(self.fc1(x)), 0.2))
        return self.out(F.leaky_relu(self.fc2(x), 0.2) * 0.5)


ZOO = {  # class -> (input shape, constructor keywords)
    "LeNet5": ((1, 28, 28), {"num_classes": 10}),
    "SmallVGG": ((3, 16, 16), {"num_classes": 5}),
    "ResNet18ish": ((3, 32, 32), {"num_classes": 10}),
    "DenseNetish": ((3, 8, 8), {"num_classes": 4}),
    "UNetish": ((1, 8, 8), {"num_classes": 3}),
    "MLP": ((2,), {"num_classes": 3}),
}


def build(name: str, seed: int = 0) -> nn.Module:
    """The class ``name`` with seeded weights and batch-norm statistics that are not the identity."""
    torch.manual_seed(seed)
    m = globals()[name](**ZOO[name][1])
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.normal_(0, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
    return m.eval()


def assert_tiles_match_the_forward_pass(net, slice_, tess) -> None:
    """Every tile of non-negligible area has, at its centroid, the forward pass's pattern in every layer it has.

    A sliver from two nearly parallel cuts (area ~1e-14) has no robust interior point (its centroid sits
    1e-8 from a cut), so tiles under 1e-9 of the domain are left out; they must be under 5 % of all."""
    from geometry.tessellation import pack_pattern

    keep = tess.areas() > 1e-9 * tess.domain_area()
    assert keep.mean() > 0.95
    with torch.no_grad():
        tr = net.to_dtype_device(torch.float64).trace(torch.as_tensor(slice_.to_input(tess.centroids()[keep]), dtype=torch.float64))
    for j, (p, info) in enumerate(zip(tr.patterns[: tess.depth], net.layer_infos)):  # a partial depth has its first layers
        assert np.array_equal(pack_pattern(p.numpy(), info.kind), tess.codes[j][keep]), f"layer {j} ({info.path}, {info.kind})"
