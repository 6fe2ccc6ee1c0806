"""Exports examples/configurable.onnx: a small PyTorch module whose forward
takes configuration arguments (scale, bias, use_mult) besides its data input,
exported once with every argument as a graph input. Run with /usr/bin/python3."""
import os
import torch


class Configurable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x, scale, bias, use_mult: bool):
        y = self.lin(x)
        if use_mult:
            y = y * scale
        else:
            y = y + scale
        return torch.relu(y + bias)


def main():
    torch.manual_seed(0)
    m = torch.jit.script(Configurable().eval())
    x = torch.randn(2, 4)
    args = (x, torch.tensor(2.0), torch.tensor(0.5), torch.tensor(True))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configurable.onnx")
    torch.onnx.export(m, args, out, opset_version=13,
                      input_names=["x", "scale", "bias", "use_mult"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    print("wrote", out)


if __name__ == "__main__":
    main()
