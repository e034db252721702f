package deploy

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// checkContainer checks one container of a workload against the binary it
// runs, and returns the binary's name and the port it serves /metrics on.
func checkContainer(t *testing.T, w workload, c corev1.Container, flags map[string]map[string]flagInfo,
	img image, secrets map[string][]string, configs map[string]map[string]string) (string, int32) {
	if len(c.Command) != 1 {
		t.Errorf("container %s runs %q: give the binary as its one command, the flags as args", c.Name, c.Command)
		return "", 0
	}
	i := slices.IndexFunc(binaries, func(b binary) bool { return b.name == filepath.Base(c.Command[0]) })
	if i < 0 {
		t.Errorf("container %s runs %s, no Presence binary", c.Name, c.Command[0])
		return "", 0
	}
	b := binaries[i]
	if pkg := img.binaries[c.Command[0]]; pkg != b.pkg {
		t.Errorf("container %s runs %s, which deploy/Dockerfile builds from %q, want %s", c.Name, c.Command[0], pkg, b.pkg)
	}
	checkResources(t, c)

	given, fromSecret := containerSettings(t, c, b, secrets, configs)
	fl := flags[b.name]
	for name, v := range given {
		if _, ok := fl[name]; ok {
			continue
		}
		t.Errorf("container %s sets %s, which %s does not take", c.Name, v.from, b.name)
	}
	if _, ok := fl["auth"]; ok {
		if insecure, _ := strconv.ParseBool(given["insecure"].value); given["auth"].value == "" || insecure {
			t.Errorf("container %s serves without --auth, or with --insecure", c.Name)
		}
	}
	if r, ok := given["redis-url"]; ok && !fromSecret["redis-url"] {
		t.Errorf("container %s takes %s from no Secret: Redis requires a password, which its URL holds", c.Name, r.from)
	}
	if _, ok := given["brokers"]; ok {
		if given["kafka-sasl-mechanism"].value == "" || given["kafka-username"].value == "" || !fromSecret["kafka-password"] {
			t.Errorf("container %s reaches Kafka without a SASL mechanism, a user and a password from a Secret", c.Name)
		}
	}
	for _, name := range fileFlags {
		if v, ok := given[name]; ok {
			checkSecretFile(t, w.pod.Spec, c, v, secrets)
		}
	}

	addr := atoi32(listenPort(t, given, fl, "addr"))
	for _, p := range []struct {
		kind, path string
		probe      *corev1.Probe
	}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("container %s has no HTTP %s probe", c.Name, p.kind)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("the %s probe of %s asks %s, want %s", p.kind, c.Name, p.probe.HTTPGet.Path, p.path)
		case addr == 0 || containerPort(c, p.probe.HTTPGet.Port) != addr:
			t.Errorf("the %s probe of %s asks port %s, not a declared port of --addr (%d)", p.kind, c.Name, p.probe.HTTPGet.Port.String(), addr)
		}
	}

	if w.name == "processor" || b.name == "processor" {
		id := given["instance-id"]
		m := varRef.FindStringSubmatch(id.value)
		if w.kind != "StatefulSet" || m == nil || m[0] != id.value || !podName(c, m[1]) {
			t.Errorf("the processor must run in a StatefulSet with --instance-id=$(POD_NAME), the pod's name from the downward API; it is a %s with --instance-id %q", w.kind, id.value)
		}
	}
	metrics := addr
	if p := listenPort(t, given, fl, "metrics-addr"); p != "" {
		metrics = atoi32(p)
	}
	return b.name, metrics
}

// containerSettings returns the flags a container sets, by flag name: its
// PRESENCE_* variables (a ConfigMap's by its value) and its args, and which
// of them come from a Secret. It fails on a literal secret, a reference to
// a Secret the README does not create or a ConfigMap key that is missing,
// and on envFrom, whose variables no one can check.
func containerSettings(t *testing.T, c corev1.Container, b binary, secrets map[string][]string,
	configs map[string]map[string]string) (map[string]setting, map[string]bool) {
	t.Helper()
	if len(c.EnvFrom) > 0 {
		t.Errorf("container %s uses envFrom: list each variable, so that it can be checked", c.Name)
	}
	given, fromSecret := map[string]setting{}, map[string]bool{}
	declared := map[string]bool{}
	for _, e := range c.Env {
		declared[e.Name] = true
		value := e.Value
		switch vf := e.ValueFrom; {
		case vf == nil:
			if (secretName.MatchString(e.Name) && !isFileFlag(e.Name)) || hasCredentials(e.Value) {
				t.Errorf("container %s sets %s literally: a secret comes from a secretKeyRef", c.Name, e.Name)
			}
		case vf.SecretKeyRef != nil:
			if !slices.Contains(secrets[vf.SecretKeyRef.Name], vf.SecretKeyRef.Key) {
				t.Errorf("container %s takes %s from key %s of Secret %s, which deploy/README.md does not create", c.Name, e.Name, vf.SecretKeyRef.Key, vf.SecretKeyRef.Name)
			}
			value = "from-secret"
		case vf.ConfigMapKeyRef != nil:
			v, ok := configs[vf.ConfigMapKeyRef.Name][vf.ConfigMapKeyRef.Key]
			if !ok {
				t.Errorf("container %s takes %s from key %s of ConfigMap %s, which the manifests do not hold", c.Name, e.Name, vf.ConfigMapKeyRef.Key, vf.ConfigMapKeyRef.Name)
			}
			value = v
		case vf.FieldRef == nil:
			t.Errorf("container %s takes %s from neither a value, a Secret, a ConfigMap nor the pod", c.Name, e.Name)
		}
		name, ok := strings.CutPrefix(e.Name, "PRESENCE_")
		if !ok {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		given[flag] = setting{value: value, from: e.Name}
		fromSecret[flag] = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	}
	args := c.Args
	if !slices.Equal(args[:min(len(b.sub), len(args))], b.sub) {
		t.Errorf("container %s runs %s without its subcommand %q", c.Name, b.name, b.sub)
	} else {
		args = args[len(b.sub):]
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		for _, m := range varRef.FindAllStringSubmatch(arg, -1) {
			if !declared[m[1]] {
				t.Errorf("container %s passes %s, but declares no variable %s: Kubernetes would pass it as it is", c.Name, arg, m[1])
			}
		}
		if !strings.HasPrefix(arg, "-") {
			t.Errorf("container %s passes %q, which is no flag; the binaries take no arguments", c.Name, arg)
			continue
		}
		name, value, ok := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		switch {
		case ok:
		case i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
			i++
			value = args[i]
		default:
			value = "true" // a boolean flag alone
		}
		if (secretName.MatchString(envName(name)) && !isFileFlag(envName(name))) || hasCredentials(value) || name == "redis-url" {
			t.Errorf("container %s gives --%s on its command line: take it from a Secret through %s", c.Name, name, envName(name))
		}
		given[name] = setting{value: value, from: "--" + name}
		fromSecret[name] = false
	}
	return given, fromSecret
}

// isFileFlag says whether a PRESENCE_* variable names a file (a path, not
// a secret).
func isFileFlag(env string) bool {
	return slices.ContainsFunc(fileFlags, func(f string) bool { return envName(f) == env })
}

// checkSecretFile checks that a flag naming a file names one of a Secret
// the pod mounts, and a key of it the README creates.
func checkSecretFile(t *testing.T, spec corev1.PodSpec, c corev1.Container, v setting, secrets map[string][]string) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(v.value, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok || m.SubPath != "" {
			continue
		}
		i := slices.IndexFunc(spec.Volumes, func(vol corev1.Volume) bool { return vol.Name == m.Name })
		if i < 0 || spec.Volumes[i].Secret == nil {
			t.Errorf("container %s reads %s %q from volume %s, which is no Secret", c.Name, v.from, v.value, m.Name)
			return
		}
		name := spec.Volumes[i].Secret.SecretName
		if !slices.Contains(secrets[name], rel) {
			t.Errorf("container %s reads %s %q: deploy/README.md creates no key %s in Secret %s", c.Name, v.from, v.value, rel, name)
		}
		return
	}
	t.Errorf("container %s reads %s %q, a file of no mounted Secret (a subPath mount would not see the Secret change)", c.Name, v.from, v.value)
}

// checkResources checks that a container requests CPU and memory and has a
// memory limit no smaller than its request.
func checkResources(t *testing.T, c corev1.Container) {
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Errorf("container %s requests no CPU or no memory", c.Name)
	}
	if lim.Memory().IsZero() || lim.Memory().Cmp(*req.Memory()) < 0 {
		t.Errorf("container %s has no memory limit, or one below its request", c.Name)
	}
}
