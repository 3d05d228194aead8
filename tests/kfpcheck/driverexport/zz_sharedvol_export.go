// This file is not part of KFP: scripts/kfpcheck/build.sh copies it into a copy of KFP 2.17.0's
// backend/src/v2/driver package so that sharedvol's checker can call the driver's unexported
// functions. It only wires inputs into KFP's own code (resolveInputs, provisionOutputs,
// initPodSpecPatch, extendPodSpecPatch); it computes nothing of the pod spec itself.

package driver

import (
	"context"
	"fmt"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/backend/src/apiserver/config/proxy"
	"github.com/kubeflow/pipelines/backend/src/common/util"
	"github.com/kubeflow/pipelines/backend/src/v2/common/plugins"
	"github.com/kubeflow/pipelines/backend/src/v2/expression"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
	"github.com/kubeflow/pipelines/kubernetes_platform/go/kubernetesplatform"
	pb "github.com/kubeflow/pipelines/third_party/ml-metadata/go/ml_metadata"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	k8score "k8s.io/api/core/v1"
)

// SharedvolTask is what the Argo workflow hands the container driver for one task: the JSON
// arguments --component, --task, --container and --kubernetes_config, and the task name.
type SharedvolTask struct {
	TaskName         string
	Component        string
	Task             string
	Container        string
	KubernetesConfig string
}

// SharedvolRun is the run the driver works for.
type SharedvolRun struct {
	PipelineName string
	RunID        string
	RunName      string
	PipelineRoot string
	// DAGInputs: the parent DAG's input parameters (for the root DAG, as the root DAG driver stores
	// them: the runtime config's parameter values, defaults filled in by the argocompiler).
	DAGInputs map[string]*structpb.Value
	// Upstream: the output parameters published by earlier tasks (task name -> output -> value);
	// they stand in for what MLMD would return.
	Upstream map[string]map[string]*structpb.Value
}

// SharedvolResult is the driver's view of one task.
type SharedvolResult struct {
	Inputs     map[string]*structpb.Value
	PodSpec    *k8score.PodSpec // nil for a Kubernetes platform op (CreatePVC, DeletePVC) and a DAG
	PlatformOp bool
	// Triggered: the task's trigger condition (if any) holds, evaluated by KFP's expression code.
	Triggered bool
}

// emptyMLMD answers the two MLMD calls resolveInputs makes for a task whose inputs are all
// parameters: no input artifacts.
type emptyMLMD struct{ pb.MetadataStoreServiceClient }

func (emptyMLMD) GetEventsByExecutionIDs(context.Context, *pb.GetEventsByExecutionIDsRequest, ...grpc.CallOption) (*pb.GetEventsByExecutionIDsResponse, error) {
	return &pb.GetEventsByExecutionIDsResponse{}, nil
}

func (emptyMLMD) GetArtifactsByID(context.Context, *pb.GetArtifactsByIDRequest, ...grpc.CallOption) (*pb.GetArtifactsByIDResponse, error) {
	return &pb.GetArtifactsByIDResponse{}, nil
}

func upstreamValue(run SharedvolRun, spec *pipelinespec.TaskInputsSpec_InputParameterSpec) (*pipelinespec.TaskInputsSpec_InputParameterSpec, error) {
	out := spec.GetTaskOutputParameter()
	if out == nil {
		return spec, nil
	}
	v, ok := run.Upstream[out.GetProducerTask()][out.GetOutputParameterKey()]
	if !ok {
		return nil, fmt.Errorf("no value for output %q of upstream task %q", out.GetOutputParameterKey(), out.GetProducerTask())
	}
	return &pipelinespec.TaskInputsSpec_InputParameterSpec{
		Kind: &pipelinespec.TaskInputsSpec_InputParameterSpec_RuntimeValue{
			RuntimeValue: &pipelinespec.ValueOrRuntimeParameter{
				Value: &pipelinespec.ValueOrRuntimeParameter_Constant{Constant: v},
			},
		},
	}, nil
}

// SharedvolPodSpecPatch runs the container driver's input resolution and pod-spec patch for one
// task, without MLMD, the cache or a cluster.
func SharedvolPodSpecPatch(ctx context.Context, run SharedvolRun, in SharedvolTask) (*SharedvolResult, error) {
	proxy.InitializeConfigWithEmptyForTests()
	component := &pipelinespec.ComponentSpec{}
	if err := util.UnmarshalString(in.Component, component); err != nil {
		return nil, fmt.Errorf("component spec of %s: %w", in.TaskName, err)
	}
	task := &pipelinespec.PipelineTaskSpec{}
	if err := util.UnmarshalString(in.Task, task); err != nil {
		return nil, fmt.Errorf("task spec of %s: %w", in.TaskName, err)
	}
	container := &pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec{}
	if in.Container == "" {
		container = nil // a DAG driver call: inputs and condition only
	} else if err := util.UnmarshalString(in.Container, container); err != nil {
		return nil, fmt.Errorf("container spec of %s: %w", in.TaskName, err)
	}
	var k8sCfg *kubernetesplatform.KubernetesExecutorConfig
	if in.KubernetesConfig != "" {
		k8sCfg = &kubernetesplatform.KubernetesExecutorConfig{}
		if err := util.UnmarshalString(in.KubernetesConfig, k8sCfg); err != nil {
			return nil, fmt.Errorf("kubernetes config of %s: %w", in.TaskName, err)
		}
	}
	// Upstream task outputs become the constants MLMD would have returned.
	for name, spec := range task.GetInputs().GetParameters() {
		resolved, err := upstreamValue(run, spec)
		if err != nil {
			return nil, fmt.Errorf("task %s input %s: %w", in.TaskName, name, err)
		}
		task.Inputs.Parameters[name] = resolved
	}
	for _, mount := range k8sCfg.GetPvcMount() {
		if mount.GetPvcNameParameter() != nil {
			resolved, err := upstreamValue(run, mount.GetPvcNameParameter())
			if err != nil {
				return nil, fmt.Errorf("task %s volume mount %s: %w", in.TaskName, mount.GetMountPath(), err)
			}
			mount.PvcNameParameter = resolved
		}
		if out := mount.GetTaskOutputParameter(); out != nil && mount.GetPvcNameParameter() == nil {
			return nil, fmt.Errorf("task %s: legacy pvc_reference.task_output_parameter is not supported by this checker", in.TaskName)
		}
	}
	rootInputs, err := structpb.NewStruct(map[string]any{})
	if err != nil {
		return nil, err
	}
	for k, v := range run.DAGInputs {
		rootInputs.Fields[k] = v
	}
	dagID := int64(1)
	dag := &metadata.DAG{Execution: &metadata.Execution{Execution: &pb.Execution{
		Id: &dagID,
		CustomProperties: map[string]*pb.Value{
			"inputs": {Value: &pb.Value_StructValue{StructValue: rootInputs}},
		},
	}}}
	mlmd := metadata.NewTestClient(emptyMLMD{})
	opts := Options{
		PipelineName:             run.PipelineName,
		RunID:                    run.RunID,
		RunName:                  run.RunName,
		RunDisplayName:           run.RunName,
		Component:                component,
		Task:                     task,
		Container:                container,
		KubernetesExecutorConfig: k8sCfg,
		IterationIndex:           -1,
		DAGExecutionID:           dagID,
		CacheDisabled:            false,
		DriverType:               "CONTAINER",
		TaskName:                 in.TaskName,
		PipelineLogLevel:         "1",
		PublishLogs:              "false",
		PluginDispatcher:         plugins.NoOpDispatcher{},
	}
	if container != nil {
		if err := validateContainer(opts); err != nil {
			return nil, err
		}
	}
	expr, err := expression.New()
	if err != nil {
		return nil, err
	}
	inputs, err := resolveInputs(ctx, dag, nil, nil, opts, mlmd, expr)
	if err != nil {
		return nil, err
	}
	result := &SharedvolResult{Inputs: inputs.GetParameterValues(), Triggered: true}
	if condition := task.GetTriggerPolicy().GetCondition(); condition != "" {
		result.Triggered, err = expr.Condition(&pipelinespec.ExecutorInput{Inputs: inputs}, condition)
		if err != nil {
			return nil, err
		}
	}
	if container == nil {
		return result, nil
	}
	if _, ok := dummyImages[container.GetImage()]; ok {
		result.PlatformOp = true
		return result, nil
	}
	executorInput := &pipelinespec.ExecutorInput{Inputs: inputs}
	executorInput.Outputs = provisionOutputs(run.PipelineRoot, in.TaskName, component.GetOutputDefinitions(), "sharedvol-kfpcheck", "false")
	taskConfig := &TaskConfig{}
	podSpec, err := initPodSpecPatch(container, component, executorInput, 1, run.PipelineName, run.RunID, run.RunName,
		"1", "false", "false", taskConfig, false, false, "",
		"ml-pipeline.kubeflow", "8887", "metadata-grpc-service.kubeflow", "8080", map[string]string{})
	if err != nil {
		return nil, err
	}
	if k8sCfg != nil {
		inputParams, _, err := dag.Execution.GetParameters()
		if err != nil {
			return nil, err
		}
		if err := extendPodSpecPatch(ctx, podSpec, opts, dag, nil, mlmd, inputParams, taskConfig); err != nil {
			return nil, err
		}
	}
	result.PodSpec = podSpec
	return result, nil
}
