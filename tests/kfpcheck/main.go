// kfpcheck: a compiled KFP pipeline YAML through Kubeflow Pipelines 2.17.0's own backend code.
//
// Usage:
//
//	kfpcheck --pipeline FILE.yaml [--params JSON|@FILE] [--upstream JSON] [--run-name NAME] [--namespace NS]
//
// It does what the API server does when a run is created (template parsing and pipeline-spec
// validation, the v2 template's RunWorkflow with the argocompiler, Argo's workflow validation),
// then, for every container task of the workflow, what the container driver computes from the
// arguments the workflow hands it: the resolved inputs and the pod-spec patch. --params is the
// REST API's runtime_config.parameters (a JSON object of typed values). MLMD is not here: an
// upstream task's output parameter is "<task>-<output>" unless --upstream gives its value.
//
// Output: one JSON object on stdout, {"workflow": ..., "tasks": {NAME: {...}}} when the backend
// accepts the run (exit 0), {"stage": ..., "error": ...} when it refuses it (exit 3). Exit 2 for
// bad usage.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	wfapi "github.com/argoproj/argo-workflows/v4/pkg/apis/workflow/v1alpha1"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/backend/src/apiserver/config/proxy"
	"github.com/kubeflow/pipelines/backend/src/apiserver/model"
	"github.com/kubeflow/pipelines/backend/src/apiserver/template"
	"github.com/kubeflow/pipelines/backend/src/common/util"
	"google.golang.org/protobuf/types/known/structpb"
	k8score "k8s.io/api/core/v1"

	driver "sharedvol.local/kfpcheck/kfpdriver"
)

const (
	runID        = "00000000-0000-4000-8000-000000000001"
	pipelineRoot = "minio://mlpipeline/v2/artifacts"
)

type refusal struct {
	Stage string `json:"stage"`
	Error string `json:"error"`
}

type taskReport struct {
	Inputs       map[string]any                `json:"inputs"`
	PlatformOp   bool                          `json:"platformOp"`
	Dependencies []string                      `json:"dependencies"`
	Condition    string                        `json:"condition,omitempty"`
	Triggered    bool                          `json:"triggered"`
	Resources    *k8score.ResourceRequirements `json:"resources,omitempty"`
	Volumes      []k8score.Volume              `json:"volumes,omitempty"`
	VolumeMounts []k8score.VolumeMount         `json:"volumeMounts,omitempty"`
	NodeSelector map[string]string             `json:"nodeSelector,omitempty"`
	Tolerations  []k8score.Toleration          `json:"tolerations,omitempty"`
	Error        string                        `json:"error,omitempty"`
}

type driverCall struct {
	name string
	args []wfapi.Parameter
}

type walker struct {
	wf           *wfapi.Workflow
	templates    map[string]*wfapi.Template
	upstream     map[string]map[string]*structpb.Value
	out          *report
	pipelineName string
}

var producerTask = regexp.MustCompile(`tasks\.([^.]+)\.outputs`)

// walk runs the drivers of one DAG template: DAG drivers (inputs and condition of a sub-DAG) and
// container drivers, then the sub-DAGs with the inputs their drivers resolved.
func (w *walker) walk(name string, dagInputs map[string]*structpb.Value, active bool) {
	ctx := context.Background()
	run := driver.SharedvolRun{
		PipelineName: w.pipelineName, RunID: runID, RunName: w.wf.Name, PipelineRoot: pipelineRoot,
		DAGInputs: dagInputs, Upstream: w.upstream,
	}
	dagDrivers := map[string]*driver.SharedvolResult{}
	dagDriverErrs := map[string]error{}
	tasks := w.templates[name].DAG.Tasks
	for _, task := range tasks {
		args := task.Arguments.Parameters
		in := driver.SharedvolTask{
			TaskName:         param(w.wf, args, "task-name"),
			Component:        param(w.wf, args, "component"),
			Task:             param(w.wf, args, "task"),
			Container:        param(w.wf, args, "container"),
			KubernetesConfig: param(w.wf, args, "kubernetes-config"),
		}
		switch {
		case strings.HasPrefix(task.Template, "system-dag-driver"):
			in.Container = ""
			res, err := driver.SharedvolPodSpecPatch(ctx, run, in)
			dagDrivers[task.Name], dagDriverErrs[task.Name] = res, err
		case strings.HasPrefix(task.Template, "system-container-driver"):
			taskSpec := &pipelinespec.PipelineTaskSpec{}
			_ = util.UnmarshalString(in.Task, taskSpec)
			rep := &taskReport{Dependencies: taskSpec.GetDependentTasks(), Condition: taskSpec.GetTriggerPolicy().GetCondition()}
			sort.Strings(rep.Dependencies)
			w.out.Tasks[in.TaskName] = rep
			res, err := driver.SharedvolPodSpecPatch(ctx, run, in)
			if err != nil {
				rep.Error = err.Error()
				continue
			}
			rep.Triggered = active && res.Triggered
			rep.PlatformOp = res.PlatformOp
			rep.Inputs = map[string]any{}
			for k, v := range res.Inputs {
				rep.Inputs[k] = v.AsInterface()
			}
			if ps := res.PodSpec; ps != nil {
				for _, ctr := range ps.Containers {
					if ctr.Name == "main" {
						r := ctr.Resources
						rep.Resources = &r
						rep.VolumeMounts = ctr.VolumeMounts
					}
				}
				rep.Volumes = ps.Volumes
				rep.NodeSelector = ps.NodeSelector
				rep.Tolerations = ps.Tolerations
			}
		}
	}
	for _, task := range tasks {
		sub := w.templates[task.Template]
		if sub == nil || sub.DAG == nil || strings.HasPrefix(task.Template, "system-") {
			continue
		}
		m := producerTask.FindStringSubmatch(param(w.wf, task.Arguments.Parameters, "parent-dag-id"))
		if m == nil {
			continue
		}
		if err := dagDriverErrs[m[1]]; err != nil {
			w.out.Tasks[task.Name] = &taskReport{Error: err.Error()}
			continue
		}
		res := dagDrivers[m[1]]
		if res == nil {
			continue
		}
		w.walk(task.Template, res.Inputs, active && res.Triggered)
	}
}

type report struct {
	Workflow json.RawMessage        `json:"workflow"`
	Tasks    map[string]*taskReport `json:"tasks"`
}

func refuse(stage string, err error) {
	out, _ := json.Marshal(refusal{Stage: stage, Error: err.Error()})
	fmt.Println(string(out))
	os.Exit(3)
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "kfpcheck: %s\n", msg)
	os.Exit(2)
}

var workflowParam = regexp.MustCompile(`^\{\{workflow\.parameters\.([^}]+)\}\}$`)

func param(wf *wfapi.Workflow, args []wfapi.Parameter, name string) string {
	for _, p := range args {
		if p.Name != name || p.Value == nil {
			continue
		}
		v := p.Value.String()
		if m := workflowParam.FindStringSubmatch(v); m != nil {
			for _, wp := range wf.Spec.Arguments.Parameters {
				if wp.Name == m[1] && wp.Value != nil {
					return wp.Value.String()
				}
			}
		}
		return v
	}
	return ""
}

func main() {
	pipelinePath := flag.String("pipeline", "", "compiled pipeline YAML")
	params := flag.String("params", "{}", "runtime_config.parameters as JSON, or @FILE")
	runName := flag.String("run-name", "resnet18-cifar10-kfpcheck", "the workflow's name (the driver's run name)")
	namespace := flag.String("namespace", "kubeflow", "the run's namespace")
	upstreamFlag := flag.String("upstream", "{}", `output parameters of upstream tasks, {"task": {"output": value}}, over the stand-ins`)
	flag.Parse()
	if *pipelinePath == "" {
		usage("--pipeline is required")
	}
	manifest, err := os.ReadFile(*pipelinePath)
	if err != nil {
		usage(err.Error())
	}
	paramsJSON := *params
	if strings.HasPrefix(paramsJSON, "@") {
		b, err := os.ReadFile(paramsJSON[1:])
		if err != nil {
			usage(err.Error())
		}
		paramsJSON = string(b)
	}
	var typed map[string]*structpb.Value
	if err := json.Unmarshal([]byte(paramsJSON), &typed); err != nil {
		usage(fmt.Sprintf("--params is not a JSON object: %v", err))
	}

	// The API server's CreateRun: fetchTemplateFromPipelineSpec, RunWorkflow, Validate; as a
	// server configured without an HTTP proxy.
	proxy.InitializeConfig("", "", "")
	tmpl, err := template.New(manifest, template.TemplateOptions{})
	if err != nil {
		refuse("template", util.Wrap(err, "Failed to fetch a template with an invalid pipeline spec manifest"))
	}
	run := &model.Run{
		DisplayName: *runName,
		Namespace:   *namespace,
		PipelineSpec: model.PipelineSpec{
			PipelineSpecManifest: model.LargeText(manifest),
			RuntimeConfig:        model.RuntimeConfig{Parameters: model.LargeText(paramsJSON), PipelineRoot: pipelineRoot},
		},
	}
	spec, err := tmpl.RunWorkflow(run, template.RunWorkflowOptions{RunID: runID, RunAt: 1700000000})
	if err != nil {
		refuse("compile", util.Wrap(err, "Failed to generate the ExecutionSpec"))
	}
	if err := spec.Validate(false, false); err != nil {
		refuse("validate", util.NewInternalServerError(err, "Failed to validate workflow for (%+v)", spec.ExecutionName()))
	}
	wrapped, ok := spec.(*util.Workflow)
	if !ok {
		refuse("compile", fmt.Errorf("execution spec is %T, not an Argo workflow", spec))
	}
	wf := wrapped.Workflow
	// Argo names the workflow from generateName; the driver sees the name as --run_name.
	if wf.Name == "" {
		wf.Name = *runName
	}

	templates := map[string]*wfapi.Template{}
	for i := range wf.Spec.Templates {
		templates[wf.Spec.Templates[i].Name] = &wf.Spec.Templates[i]
	}
	// The root DAG driver's runtime config: the inputs of the root DAG.
	rootInputs := map[string]*structpb.Value{}
	var calls []driverCall
	for _, t := range wf.Spec.Templates {
		if t.DAG == nil {
			continue
		}
		for _, task := range t.DAG.Tasks {
			if rc := param(wf, task.Arguments.Parameters, "runtime-config"); rc != "" {
				cfg := &pipelinespec.PipelineJob_RuntimeConfig{}
				if err := util.UnmarshalString(rc, cfg); err != nil {
					refuse("driver", fmt.Errorf("root runtime config: %w", err))
				}
				for k, v := range cfg.GetParameterValues() {
					rootInputs[k] = v
				}
			}
			if strings.HasPrefix(task.Template, "system-container-driver") {
				calls = append(calls, driverCall{name: param(wf, task.Arguments.Parameters, "task-name"), args: task.Arguments.Parameters})
			}
		}
	}

	// Every upstream output parameter gets a stand-in value (MLMD is not here): "<task>-<output>".
	upstream := map[string]map[string]*structpb.Value{}
	notDNS := regexp.MustCompile(`[^a-z0-9]+`)
	for _, c := range calls {
		comp := &pipelinespec.ComponentSpec{}
		if err := util.UnmarshalString(param(wf, c.args, "component"), comp); err != nil {
			refuse("driver", fmt.Errorf("component of %s: %w", c.name, err))
		}
		outs := map[string]*structpb.Value{}
		for key := range comp.GetOutputDefinitions().GetParameters() {
			outs[key] = structpb.NewStringValue(strings.Trim(notDNS.ReplaceAllString(strings.ToLower(c.name+"-"+key), "-"), "-"))
		}
		upstream[c.name] = outs
	}
	var given map[string]map[string]*structpb.Value
	if err := json.Unmarshal([]byte(*upstreamFlag), &given); err != nil {
		usage(fmt.Sprintf("--upstream is not a JSON object of objects: %v", err))
	}
	for task, outs := range given {
		if upstream[task] == nil {
			upstream[task] = map[string]*structpb.Value{}
		}
		for k, v := range outs {
			upstream[task][k] = v
		}
	}

	out := report{Tasks: map[string]*taskReport{}}
	w := walker{wf: wf, templates: templates, upstream: upstream, out: &out, pipelineName: tmpl.V2PipelineName()}
	root := ""
	for _, t := range wf.Spec.Templates {
		if t.DAG == nil {
			continue
		}
		for _, task := range t.DAG.Tasks {
			if task.Template != "" && templates[task.Template] != nil && templates[task.Template].DAG != nil &&
				strings.Contains(param(wf, task.Arguments.Parameters, "parent-dag-id"), "root-driver") {
				root = task.Template
			}
		}
	}
	if root == "" {
		refuse("driver", fmt.Errorf("no root DAG template in the workflow"))
	}
	w.walk(root, rootInputs, true)
	wfJSON, err := json.Marshal(wf)
	if err != nil {
		refuse("output", err)
	}
	out.Workflow = wfJSON
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(1)
	}
}
