{{/* Full name of the release's objects (at most 63 characters). */}}
{{- define "lsml-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lsml-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lsml-operator.labels" -}}
{{ include "lsml-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lsml
app.kubernetes.io/component: operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "lsml-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lsml-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lsml-operator.clusterwide" -}}
{{- if eq (len .Values.watchNamespaces) 0 -}}true{{- end -}}
{{- end -}}

{{/*
Exactly what the operator does, nothing more:
- MLBackends: kopf watches them, patches its annotations and finalizer; the operator writes status;
  mlbackends/finalizers lets owner references set blockOwnerDeletion.
- children: server-side apply (patch; create for first apply), get to read them, delete when a spec
  drops them, list/watch for the child watches that restore hand-deleted children.
- configmaps get: hash of the model ConfigMap.
- events: kopf posts what it did on the MLBackend.
- kopf peering: the peering object of the operator's scope.
- servicemonitors (monitoring.coreos.com), only with monitoring.perMLBackend: the ServiceMonitor an
  MLBackend asks for (spec.monitoring.serviceMonitor): get before the first apply, patch (apply), delete
  on disable; no list/watch (full passes re-apply it). A rule on a kind the cluster does not serve is
  valid: the Prometheus Operator's CRDs are needed only when an MLBackend asks.
Secrets are in "lsml-operator.secretRules" (they may be granted in fewer namespaces).
*/}}
{{- define "lsml-operator.rules" -}}
- apiGroups: ["lsml.dev"]
  resources: ["mlbackends"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["lsml.dev"]
  resources: ["mlbackends/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["lsml.dev"]
  resources: ["mlbackends/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.monitoring.perMLBackend }}
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
{{- end -}}

{{/*
Secrets: get the Label Studio token and basic-auth Secrets a spec names (never list/watch: the
operator reads only Secrets a spec names); create the managed Redis' password Secret once (never
update/patch/delete: it is kept, and garbage-collected with its MLBackend). What create may make is
narrowed further by the ValidatingAdmissionPolicy of secret-guard.yaml.
*/}}
{{- define "lsml-operator.secretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
{{- end -}}
