{{/*
Expand the name of the chart.
*/}}
{{- define "playgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "playgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "playgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "playgate.labels" -}}
helm.sh/chart: {{ include "playgate.chart" . }}
{{ include "playgate.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "playgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "playgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "playgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "playgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference.
*/}}
{{- define "playgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
Stops rendering with a clear message when no database is configured:
PostgreSQL is external and there is no sensible in-cluster default.
*/}}
{{- define "playgate.requireDatabase" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) }}
{{- fail "playgate: set database.url (postgres://user:password@host:5432/playgate) or database.existingSecret (a Secret holding DATABASE_URL)" }}
{{- end }}
{{- if and .Values.bootstrapAdmin.login (not .Values.bootstrapAdmin.password) (not .Values.bootstrapAdmin.existingSecret) }}
{{- fail "playgate: bootstrapAdmin.login needs bootstrapAdmin.password (or use bootstrapAdmin.existingSecret)" }}
{{- end }}
{{- end }}

{{/*
Secret and key holding DATABASE_URL for the pods.
*/}}
{{- define "playgate.databaseSecretName" -}}
{{- .Values.database.existingSecret | default (include "playgate.fullname" .) }}
{{- end }}
{{- define "playgate.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/*
True when the chart's own Secret has at least one key.
*/}}
{{- define "playgate.hasSecret" -}}
{{- if or (and .Values.database.url (not .Values.database.existingSecret)) (and .Values.bootstrapAdmin.login (not .Values.bootstrapAdmin.existingSecret)) (and .Values.ome.secret (not .Values.ome.existingSecret)) (and .Values.viewerCookie.secret (not .Values.viewerCookie.existingSecret)) }}true{{ end }}
{{- end }}

{{/*
Environment variables that come from Secrets (DATABASE_URL, bootstrap admin,
OvenMediaEngine secret, viewer cookie secret). `databaseSecret` overrides the Secret of
DATABASE_URL (the migration Job reads a hook Secret that exists before the
release's own resources).
*/}}
{{- define "playgate.secretEnv" -}}
{{- $ctx := .ctx -}}
{{- $full := include "playgate.fullname" $ctx -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .databaseSecret | default (include "playgate.databaseSecretName" $ctx) }}
      key: {{ include "playgate.databaseSecretKey" $ctx }}
{{- if .withApp }}
{{- with $ctx.Values.bootstrapAdmin }}
{{- if or .existingSecret .login }}
- name: PLAYGATE_BOOTSTRAP_ADMIN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | default $full }}
      key: {{ if .existingSecret }}{{ .existingSecretKey }}{{ else }}PLAYGATE_BOOTSTRAP_ADMIN{{ end }}
{{- end }}
{{- end }}
{{- with $ctx.Values.ome }}
{{- if or .existingSecret .secret }}
- name: PLAYGATE_OME_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | default $full }}
      key: {{ if .existingSecret }}{{ .existingSecretKey }}{{ else }}PLAYGATE_OME_SECRET{{ end }}
{{- end }}
{{- end }}
{{- with $ctx.Values.viewerCookie }}
{{- if or .existingSecret .secret }}
- name: PLAYGATE_VIEWER_COOKIE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | default $full }}
      key: {{ if .existingSecret }}{{ .existingSecretKey }}{{ else }}PLAYGATE_VIEWER_COOKIE_SECRET{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
