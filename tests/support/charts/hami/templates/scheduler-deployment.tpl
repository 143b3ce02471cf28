apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-scheduler
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/component: hami-scheduler
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/component: hami-scheduler
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/component: hami-scheduler
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: kube-scheduler
          image: {{ include "hami.image" (dict "image" .Values.scheduler.kubeScheduler.image "global" .Values.global "tag" (include "hami.kubeSchedulerTag" .)) | quote }}
          imagePullPolicy: {{ .Values.scheduler.kubeScheduler.image.pullPolicy }}
          command:
            - kube-scheduler
            - --config=/config/config.yaml
        - name: vgpu-scheduler-extender
          image: {{ include "hami.image" (dict "image" .Values.scheduler.extender.image "global" .Values.global "tag" (.Values.scheduler.extender.image.tag | default .Values.global.imageTag)) | quote }}
          imagePullPolicy: {{ .Values.scheduler.extender.image.pullPolicy }}
          command:
            - scheduler
            - --scheduler-name={{ .Values.schedulerName }}
            - --device-config-file=/device-config.yaml
