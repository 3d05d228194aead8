"""The resnet18/cifar10 KFP pipeline: components, compile, submit-and-follow, local run, and the CLI."""
