#!/bin/sh
echo "$1 from job $ASSAY_JOB_NAME (pipeline $ASSAY_PIPELINE_ID)"
