"""The step programs run inside pods (prepare-data, train-resnet, test-resnet, produce-metrics) and the
data-plane contract they share. Never imports kubernetes, and nothing from :mod:`storage`.
"""
